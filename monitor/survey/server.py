"""The FastAGI survey server: ``AGI(agi://HOST:4573/csat,...)`` after ``Queue(...,c)``.

Each connection: request headers (deadline + byte limit), policy decision, then the pure
:class:`~monitor.core.survey.Conversation` driven command by command. Nothing on this path blocks or awaits
anything but the socket: the call is found through an injected synchronous ``lookup`` (the tracker's
``find_call``), results leave through an injected ``on_result`` callable (storage, metrics, webhook are
someone else's). Dialplan arguments: ``csat,<linkedid>,<queue>,<language>`` and ``csat-callback,<token>``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import time as dtime
from typing import Protocol

from monitor.core.records import CallRecord
from monitor.core.repeat import normalize_number
from monitor.core.survey import (
    Ask,
    Conversation,
    CooldownState,
    Decision,
    Done,
    OptOutList,
    Play,
    Reply,
    SetVar,
    SurveyPolicy,
    SurveyResultRecord,
)
from monitor.survey.agi import AgiChannel, AgiError, AgiHangup, quote, read_headers, render, to_reply

log = logging.getLogger("qmon.survey")

LookupFn = Callable[[str | None, str | None], CallRecord | None]
ResultSink = Callable[[SurveyResultRecord], None]
LocalTimeFn = Callable[[float], dtime]


def local_time(ts: float) -> dtime:
    """Wall-clock time of ``ts`` in the daemon's local zone (what quiet hours mean to a site)."""
    return datetime.fromtimestamp(ts).time()


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    """The original call a callback survey is about (handed over by the callback scheduler)."""

    record: CallRecord
    caller: str
    language: str | None


class CallbackClaims(Protocol):
    """What the server needs from the callback scheduler (a token -> the original call)."""

    def claim(self, token: str) -> CallbackTarget | None:
        """The target of a callback whose survey channel just connected, once."""
        ...


class SurveyServer:
    """Asyncio FastAGI server running one survey conversation per connection."""

    def __init__(
        self, policy: SurveyPolicy, *, lookup: LookupFn, on_result: ResultSink,
        cooldown: CooldownState | None = None, optout: OptOutList | None = None,
        callbacks: CallbackClaims | None = None, bind: str = "127.0.0.1", port: int = 4573,
        header_timeout_s: float = 5.0, max_header_bytes: int = 16_384,
        clock: Callable[[], float] = time.time, local: LocalTimeFn = local_time,
    ) -> None:
        self.policy = policy
        self.lookup = lookup
        self.on_result = on_result
        self.cooldown = cooldown
        self.optout = optout
        self.callbacks = callbacks
        self.bind, self.port = bind, port
        self.header_timeout_s = header_timeout_s
        self.max_header_bytes = max_header_bytes
        self.clock = clock
        self.local = local
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self.stats: dict[str, int] = {
            "connections": 0, "active": 0, "header_errors": 0, "early_hangups": 0, "errors": 0, "results": 0,
        }

    async def start(self) -> None:
        """Start listening (``port=0`` picks a free port, then read :attr:`port`)."""
        self._server = await asyncio.start_server(self._accept, self.bind, self.port, limit=self.max_header_bytes)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("survey FastAGI server listening on %s:%d", self.bind, self.port)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop accepting; let running conversations end within ``timeout_s``, then cancel them."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._sessions:
            _, pending = await asyncio.wait(set(self._sessions), timeout=timeout_s)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        self.stats["connections"] += 1
        self.stats["active"] += 1
        chan = AgiChannel(reader, writer)
        try:
            await self._session(chan)
        except Exception:  # one broken conversation must never take the server down
            self.stats["errors"] += 1
            log.exception("survey session failed")
        finally:
            self.stats["active"] -= 1
            await chan.close()
            if task is not None:
                self._sessions.discard(task)

    async def _session(self, chan: AgiChannel) -> None:
        try:
            headers = await read_headers(chan.reader, self.header_timeout_s, self.max_header_bytes)
        except AgiHangup:
            self.stats["early_hangups"] += 1
            return
        except AgiError as exc:
            self.stats["header_errors"] += 1
            log.warning("FastAGI request rejected: %s", exc)
            return
        started = self.clock()
        script = headers.get("agi_network_script", "").split("?")[0].strip("/")
        args = [headers.get(f"agi_arg_{i}", "") for i in (1, 2, 3)]
        call: CallRecord | None = None
        caller: str | None = None
        lang_hint: str | None = None
        source = "agi"
        if script == "csat":
            call = self.lookup(headers.get("agi_uniqueid") or None, args[0] or None)
            caller = (call.caller if call else None) or normalize_number(headers.get("agi_callerid"))
            lang_hint = args[2] or None
        elif script == "csat-callback" and self.callbacks is not None:
            source = "callback"
            target = self.callbacks.claim(args[0])
            if target is not None:
                call, caller, lang_hint = target.record, target.caller, target.language
        else:
            log.warning("FastAGI request for unknown script %r", script)
            await self._run(chan, [Play(self.policy.prompt(self.policy.config.default_language, "goodbye"))])
            return
        last = self.cooldown.last_surveyed(caller) if caller and self.cooldown else None
        opted = bool(caller and self.optout and self.optout.is_opted_out(caller))
        decision = self.policy.decide(call, caller, started, self.local(started), last, opted)
        lang = self.policy.language(decision.queue, headers.get("agi_language"), lang_hint)
        if not decision.eligible:
            await self._run(chan, [
                f"VERBOSE {quote('qmon survey: not eligible (' + decision.reason + ')')} 3",
                SetVar("QMON_SURVEY_STATUS", "not_eligible"), Play(self.policy.prompt(lang, "goodbye")),
            ])
            self._emit(self._record(call, headers, caller, decision, "not_eligible", lang, source, started,
                                    reason=decision.reason, queue_hint=args[1],
                                    lid_hint=args[0] if source == "agi" else ""))
            return
        conv = Conversation(self.policy, lang, started, intro=source == "callback")
        await self._run(chan, [f"VERBOSE {quote('qmon survey: ' + lang)} 3"])
        cmd = conv.start(self.clock())
        while not isinstance(cmd, Done):
            reply = await self._exec(chan, cmd, started)
            cmd = conv.feed(reply, self.clock())
        out = cmd.outcome
        rec = self._record(call, headers, caller, decision, out.status, lang, source, started,
                           queue_hint=args[1], lid_hint=args[0] if source == "agi" else "",
                           scores=(out.csat, out.nps, out.ces), raw=out.raw)
        await chan.close()  # hand the channel back to the dialplan before any bookkeeping
        self._emit(rec)
        if caller and self.cooldown is not None:
            try:
                self.cooldown.mark_surveyed(caller, started)
            except Exception:  # a dead cooldown store costs a cooldown entry, never the result
                log.exception("could not record the survey in the cooldown store")

    async def _exec(self, chan: AgiChannel, cmd: Ask | Play | SetVar, started: float) -> Reply:
        # A reply may take as long as the prompt plus the digit timeout: bound it by what is left of the
        # survey's time budget (plus slack), so a stuck peer cannot hold a session forever.
        left = self.policy.config.max_duration_s - (self.clock() - started)
        try:
            return to_reply(await chan.command(render(cmd), max(left, 0.0) + 10.0))
        except AgiHangup:
            return Reply(hangup=True)
        except AgiError as exc:
            log.warning("survey conversation aborted: %s", exc)
            return Reply(hangup=True)

    async def _run(self, chan: AgiChannel, cmds: list[str | Ask | Play | SetVar]) -> None:
        for c in cmds:
            try:
                await chan.command(c if isinstance(c, str) else render(c), 15.0)
            except (AgiHangup, AgiError):
                return

    def _emit(self, rec: SurveyResultRecord) -> None:
        self.stats["results"] += 1
        try:
            self.on_result(rec)
        except Exception:  # the sink is someone else's; its failure must not hurt the next caller
            log.exception("survey result sink failed")

    def _record(
        self, call: CallRecord | None, headers: dict[str, str], caller: str | None, d: Decision, status: str,
        lang: str, source: str, started: float, *, lid_hint: str = "", reason: str = "ok", queue_hint: str = "",
        scores: tuple[int | None, int | None, int | None] = (None, None, None), raw: str = "",
    ) -> SurveyResultRecord:
        return SurveyResultRecord(
            linkedid=call.linkedid if call else (lid_hint or None),
            uniqueid=call.call_id if call else (headers.get("agi_uniqueid") or None),
            caller=caller, queue=d.queue or queue_hint or None, agent=d.agent, status=status,
            csat=scores[0], nps=scores[1], ces=scores[2], raw=raw, language=lang, source=source,
            started_ts=started, ended_ts=self.clock(), reason=reason,
        )
