"""The FastAGI survey server: ``AGI(agi://HOST:4573/csat,...)`` after ``Queue(...,c)``.

Each connection: request headers (deadline + byte limit), policy decision, then the pure
:class:`~monitor.core.conversation.Conversation` driven command by command. The call is found through an injected
synchronous ``lookup`` (the tracker's ``find_call``), results leave through an injected ``on_result`` callable
(storage, metrics, webhook are someone else's). Dialplan arguments: ``csat,<linkedid>,<queue>,<language>`` and
``csat-callback,<token>``.

Never silence (issue 12): qmon's own work before the first prompt (lookup, cooldown and opt-out stores) runs in
a worker thread under ``work_deadline_s`` (default 2 s); past it the caller hears goodbye at once. A slow peer is
another matter: each command's reply may take its prompt's length (+ the digit timeouts) + ``reply_slack_s``
(recorded: a proxy delaying every reply by 3 s, survey still completed); a peer silent beyond that is dropped so
the dialplan goes on. The result sink and the cooldown write run only after the channel is handed back.

Overload (issue 14): at most ``max_sessions`` surveys run at once; beyond it a caller hears goodbye at once
(``QMON_SURVEY_STATUS=overloaded``, no lookup). Connections without headers yet are bounded by
:class:`~monitor.survey.listener.Admission` (the oldest one that sent no request is dropped for a newcomer; one
whose request is buffered is read, so a burst of 2 x ``max_sessions`` callers all get an answer), and accept()
failures (EMFILE) by :class:`~monitor.survey.listener.Acceptor`: logged once, never a traceback per connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from monitor.core.conversation import Ask, Conversation, Done, Play, PromptDurations, Reply, SetVar
from monitor.core.records import CallRecord
from monitor.core.repeat import normalize_number
from monitor.core.survey import CooldownState, Decision, OptOutList, SurveyPolicy, SurveyResultRecord
from monitor.survey.agi import AgiChannel, AgiError, AgiHangup, quote, read_headers, render, to_reply
from monitor.survey.collaborators import CallbackClaims, CallbackTarget, LocalTimeFn, LookupFn, ResultSink, local_time
from monitor.survey.durations import default_durations, worst_case_s
from monitor.survey.listener import (
    Acceptor,
    Admission,
    Throttle,
    backlog_for,
    fd_budget,
    grow_fd_table,
    listen,
    open_stream,
)
from monitor.survey.pool import WorkerPool

log = logging.getLogger("qmon.survey")

T = TypeVar("T")
AnyCmd = str | Ask | Play | SetVar


@dataclass(frozen=True, slots=True)
class _Prep:
    """What qmon decided before the first prompt (computed in a worker thread, under the work deadline)."""

    call: CallRecord | None
    caller: str | None
    lang: str
    decision: Decision


class SurveyServer:
    """Asyncio FastAGI server running one survey conversation per connection."""

    def __init__(
        self, policy: SurveyPolicy, *, lookup: LookupFn, on_result: ResultSink,
        cooldown: CooldownState | None = None, optout: OptOutList | None = None,
        callbacks: CallbackClaims | None = None, bind: str = "127.0.0.1", port: int = 4573,
        header_timeout_s: float = 5.0, max_header_bytes: int = 16_384,
        clock: Callable[[], float] = time.time, local: LocalTimeFn = local_time,
        durations: PromptDurations | None = None, work_deadline_s: float = 2.0, reply_slack_s: float = 5.0,
        trace_var: str = "CDR(userfield)", max_sessions: int = 200,
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
        self.durations = durations if durations is not None else default_durations()
        self.work_deadline_s = work_deadline_s
        self.reply_slack_s = reply_slack_s
        self.trace_var = trace_var
        self.max_sessions = max_sessions
        self._limits: dict[tuple[str, bool], SurveyPolicy] = {}
        self._acceptor: Acceptor | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._overload = Throttle(log)
        self._bad_headers = Throttle(log)
        self._pool = WorkerPool(4, "qmon-survey")  # qmon's lookups before the first prompt (monitor/survey/pool.py)
        # The cooldown write, after the call, in its own thread: a write held by a locked or stalled state file
        # must not take the lookups' threads (every later caller would hear goodbye, not the survey).
        self._writes = WorkerPool(1, "qmon-cooldown")
        self.stats: dict[str, int] = {
            "connections": 0, "active": 0, "header_errors": 0, "early_hangups": 0, "errors": 0, "results": 0,
            "qmon_slow": 0, "peer_stalled": 0, "callbacks_declined": 0, "sessions": 0, "rejected_overloaded": 0,
            "rejected_no_room": 0, "idle_dropped": 0, "accept_errors": 0,
        }
        self._admission = Admission(max_sessions, self._spawn, self._overload_hit, log, self.stats)

    async def start(self) -> None:
        """Start listening (``port=0`` picks a free port, then read :attr:`port`); OSError if it cannot bind."""
        socks = listen(self.bind, self.port, backlog_for(self.max_sessions))
        self.port = int(socks[0].getsockname()[1])
        need, limit = fd_budget(self.max_sessions)
        grow_fd_table(socks[0], need, limit)
        self._pool.start()
        self._writes.start()
        self._acceptor = Acceptor(socks, self._admission.on_conn, self._admission.exhausted, log, self.stats)
        self._acceptor.start()
        log.info("survey FastAGI server listening on %s:%d (at most %d surveys at once)", self.bind, self.port,
                 self.max_sessions)
        if 0 <= limit < need:
            log.warning("survey.max_sessions = %d may need %d file descriptors, the limit is %d (ulimit -n, "
                        "systemd LimitNOFILE=): lower survey.max_sessions or raise the limit", self.max_sessions,
                        need, limit)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop accepting (callers already queued are still served); let running conversations end within
        ``timeout_s`` (s), then cancel them (a survey cut so is stored with reason ``qmon_shutdown``)."""
        if self._acceptor is not None:
            await self._acceptor.close()
        if self._sessions:
            _, pending = await asyncio.wait(set(self._sessions), timeout=timeout_s)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._pool.shutdown()
        self._writes.shutdown()

    def _spawn(self, sock: socket.socket) -> asyncio.Task[None]:
        task = asyncio.create_task(self._accept(sock), name="survey-agi")
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)
        return task

    def _overload_hit(self) -> None:
        self._overload.hit("survey: overloaded: %d surveys in progress (survey.max_sessions); callers beyond it "
                           "hear goodbye at once",
                           "survey: overloaded: %d more caller(s) heard goodbye instead of the survey in the last "
                           "%.0f s (survey.max_sessions = %d)", self.max_sessions)

    async def _accept(self, sock: socket.socket) -> None:
        try:
            reader, writer = await open_stream(sock, self.max_header_bytes)
        except OSError:  # the peer is already gone
            sock.close()
            return
        self._admission.reading(asyncio.current_task(), reader)
        self.stats["active"] += 1
        chan = AgiChannel(reader, writer)
        rec: SurveyResultRecord | None = None
        mark: str | None = None
        try:
            rec, mark = await self._session(chan)
        except Exception:  # one broken conversation must never take the server down
            self.stats["errors"] += 1
            log.exception("survey session failed")
        finally:
            self.stats["active"] -= 1
            try:
                await chan.close()  # the caller goes back to the dialplan before any bookkeeping
            finally:  # even if shutdown cancels the close: the survey has ended, its record is owed
                if rec is not None:
                    self._emit(rec)
            if mark is not None:
                await self._mark(mark, rec.started_ts if rec else self.clock())

    async def _session(self, chan: AgiChannel) -> tuple[SurveyResultRecord | None, str | None]:
        """One connection -> (the result to emit, the number to mark as surveyed)."""
        task = asyncio.current_task()
        try:
            headers = await read_headers(chan.reader, self.header_timeout_s, self.max_header_bytes)
        except AgiHangup:
            self.stats["early_hangups"] += 1
            return None, None
        except AgiError as exc:
            self.stats["header_errors"] += 1
            self._bad_headers.hit("survey: FastAGI request rejected: %s",
                                  "survey: %d more FastAGI request(s) rejected in the last %.0f s (latest: %s)", exc)
            return None, None
        finally:
            self._admission.release(task)
        if self.stats["sessions"] >= self.max_sessions:
            return await self._overloaded(chan, headers), None
        self.stats["sessions"] += 1
        try:
            return await self._survey(chan, headers)
        finally:
            self.stats["sessions"] -= 1

    async def _overloaded(self, chan: AgiChannel, headers: dict[str, str]) -> SurveyResultRecord:
        """max_sessions surveys in progress: goodbye at once, status ``overloaded`` (no lookup, no policy)."""
        self.stats["rejected_overloaded"] += 1
        self._overload_hit()
        started = self.clock()
        script = headers.get("agi_network_script", "").split("?")[0].strip("/")
        args = [headers.get(f"agi_arg_{i}", "") for i in (1, 2, 3)]
        source = "callback" if script == "csat-callback" else "agi"
        lang = self.policy.language(None, headers.get("agi_language"), args[2] or None)
        task = asyncio.current_task()
        self._admission.hold(task)
        try:
            return await self._goodbye(chan, lang, [SetVar("QMON_SURVEY_STATUS", "overloaded"),
                                                    *self._trace("qmon:status=overloaded")], lambda: self._record(
                None, headers, normalize_number(headers.get("agi_callerid")), Decision(False, "overloaded"),
                "not_eligible", lang, source, started, reason="overloaded", queue_hint=args[1],
                lid_hint=args[0] if source == "agi" else ""))
        finally:
            self._admission.release(task)

    async def _survey(self, chan: AgiChannel, headers: dict[str, str]
                      ) -> tuple[SurveyResultRecord | None, str | None]:
        """The admitted survey: script, policy (in a worker thread, bounded), then the conversation."""
        started = self.clock()
        script = headers.get("agi_network_script", "").split("?")[0].strip("/")
        args = [headers.get(f"agi_arg_{i}", "") for i in (1, 2, 3)]
        if script not in ("csat", "csat-callback") or (script == "csat-callback" and self.callbacks is None):
            log.warning("FastAGI request for unknown script %r", script)
            await self._say(chan, self.policy.config.default_language, [])
            return None, None
        source = "agi" if script == "csat" else "callback"
        # The scheduler's state lives on the loop: claim here; the lookups that may be slow go to a thread.
        target = self.callbacks.claim(args[0]) if source == "callback" and self.callbacks is not None else None
        if target is not None and target.decline:
            await self._decline(chan, headers, target)
            return None, None
        hint = args[2] if source == "agi" else (target.language if target else None)
        lid_hint = args[0] if source == "agi" else ""
        try:
            prep = await self._bounded(self._prepare, headers, source, target, started)
        except TimeoutError:
            self.stats["qmon_slow"] += 1
            log.warning("survey: qmon's own lookups took over %.1fs; the caller hears goodbye, not silence",
                        self.work_deadline_s)
            lang = self.policy.language(None, headers.get("agi_language"), hint or None)
            return await self._goodbye(chan, lang, [SetVar("QMON_SURVEY_STATUS", "not_eligible"),
                                                    *self._trace("qmon:status=not_eligible")], lambda: self._record(
                None, headers, target.caller if target else None, Decision(False, "qmon_slow"), "not_eligible",
                lang, source, started, reason="qmon_slow", queue_hint=args[1], lid_hint=lid_hint)), None
        d = prep.decision
        if not d.eligible:
            return await self._goodbye(chan, prep.lang, [
                f"VERBOSE {quote('qmon survey: not eligible (' + d.reason + ')')} 3",
                SetVar("QMON_SURVEY_STATUS", "not_eligible"), *self._trace("qmon:status=not_eligible"),
            ], lambda: self._record(prep.call, headers, prep.caller, d, "not_eligible", prep.lang, source, started,
                                    reason=d.reason, queue_hint=args[1], lid_hint=lid_hint)), None
        conv = Conversation(self.limited(prep.lang, source == "callback"), prep.lang, started,
                            intro=source == "callback", durations=self.durations, trace_var=self.trace_var)
        try:
            await self._say(chan, prep.lang, [f"VERBOSE {quote('qmon survey: ' + prep.lang)} 3"], farewell=False)
            cmd = conv.start(self.clock())
            while not isinstance(cmd, Done):
                reply = await self._exec(chan, cmd)
                cmd = conv.feed(reply, self.clock())
        except asyncio.CancelledError:
            # Only close() cancels a survey: qmon is stopping and this one outlived the grace period. The answers
            # given so far are kept (a record is never lost); the reason tells this end from the caller's.
            cut = conv.cut(self.clock())
            self._emit(self._record(prep.call, headers, prep.caller, d, cut.status, prep.lang, source, started,
                                    queue_hint=args[1], lid_hint=lid_hint, scores=(cut.csat, cut.nps, cut.ces),
                                    raw=cut.raw, reason="qmon_shutdown"))
            raise
        out = cmd.outcome
        rec = self._record(prep.call, headers, prep.caller, d, out.status, prep.lang, source, started,
                           queue_hint=args[1], lid_hint=lid_hint, scores=(out.csat, out.nps, out.ces), raw=out.raw,
                           reason="agi_no_reply" if chan.stalled else "ok")
        return rec, prep.caller

    async def _decline(self, chan: AgiChannel, headers: dict[str, str], target: CallbackTarget) -> None:
        """A late answer of a callback already ended (and recorded): goodbye, no second record."""
        self.stats["callbacks_declined"] += 1
        lang = self.policy.language(None, headers.get("agi_language"), target.language)
        await self._say(chan, lang, [
            f"VERBOSE {quote('qmon survey: callback already ' + target.decline)} 3",
            SetVar("QMON_SURVEY_STATUS", "not_eligible"), *self._trace("qmon:status=not_eligible"),
        ])

    def limited(self, lang: str, callback: bool) -> SurveyPolicy:
        """The policy a conversation in ``lang`` runs under: ``max_duration_s`` (s), or when it is 0 the longest
        honest survey computed from the prompts' lengths (asterisk/budget.py's formula, under the dialplan's
        TIMEOUT(absolute) by its 3 s margin)."""
        policy = self._limits.get((lang, callback))
        if policy is None:
            cfg = self.policy.config
            limit = cfg.max_duration_s or worst_case_s(self.policy, self.durations, lang, callback)
            policy = self._limits[(lang, callback)] = SurveyPolicy(dataclasses.replace(cfg, max_duration_s=limit))
        return policy

    def _prepare(self, headers: dict[str, str], source: str, target: CallbackTarget | None,
                 started: float) -> _Prep:
        """Lookup, cooldown, opt-out, policy: run in a worker thread (a store may block)."""
        if source == "agi":
            args = [headers.get(f"agi_arg_{i}", "") for i in (1, 3)]
            call = self.lookup(headers.get("agi_uniqueid") or None, args[0] or None)
            caller = (call.caller if call else None) or normalize_number(headers.get("agi_callerid"))
            hint = args[1] or None
        else:
            call, caller, hint = (target.record, target.caller, target.language) if target else (None, None, None)
        last = self.cooldown.last_surveyed(caller) if caller and self.cooldown else None
        opted = bool(caller and self.optout and self.optout.is_opted_out(caller))
        decision = self.policy.decide(call, caller, started, self.local(started), last, opted)
        return _Prep(call, caller, self.policy.language(decision.queue, headers.get("agi_language"), hint), decision)

    async def _bounded(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in the server's worker pool; TimeoutError after ``work_deadline_s`` (s), the wait for a
        free worker included."""
        async with asyncio.timeout(self.work_deadline_s):
            return await self._pool.run(fn, *args)

    def _trace(self, value: str) -> list[SetVar]:
        return [SetVar(self.trace_var, value)] if self.trace_var else []

    def _reply_timeout(self, cmd: AnyCmd) -> float:
        """How long (s) Asterisk may take to answer ``cmd``: the prompt, every digit's timeout, and slack."""
        if isinstance(cmd, Ask):
            return cmd.expect_s + cmd.max_digits * cmd.timeout_ms / 1000 + self.reply_slack_s
        if isinstance(cmd, Play):
            return cmd.expect_s + self.reply_slack_s
        return self.reply_slack_s

    async def _exec(self, chan: AgiChannel, cmd: Ask | Play | SetVar) -> Reply:
        try:
            return to_reply(await chan.command(render(cmd), self._reply_timeout(cmd),
                                               dead_ok=isinstance(cmd, SetVar)))
        except AgiHangup:
            return Reply(hangup=True)
        except AgiError as exc:
            self.stats["peer_stalled"] += 1
            log.warning("survey conversation aborted: %s", exc)
            return Reply(hangup=True)

    async def _goodbye(self, chan: AgiChannel, lang: str, cmds: list[AnyCmd],
                       record: Callable[[], SurveyResultRecord]) -> SurveyResultRecord:
        """``cmds``, goodbye, then ``record()`` (this caller's result). Cut by close(), the record is emitted at
        once instead: the session never reaches its own emit, and no record may be lost."""
        try:
            await self._say(chan, lang, cmds)
        except asyncio.CancelledError:
            self._emit(record())
            raise
        return record()

    async def _say(self, chan: AgiChannel, lang: str, cmds: list[AnyCmd], *, farewell: bool = True) -> None:
        """Send ``cmds`` (then goodbye if ``farewell``), stopping at the first hang-up or stalled reply."""
        if farewell:
            g = self.policy.prompt(lang, "goodbye")
            cmds = [*cmds, Play(g, self.durations.of(lang, self.policy.prompt_file("goodbye"), "goodbye"))]
        for c in cmds:
            try:
                await chan.command(c if isinstance(c, str) else render(c), self._reply_timeout(c),
                                   dead_ok=not isinstance(c, Ask | Play))
            except AgiHangup:
                return
            except AgiError as exc:
                self.stats["peer_stalled"] += 1
                log.warning("survey: %s", exc)
                return

    async def _mark(self, caller: str, ts: float) -> None:
        if self.cooldown is None:
            return
        try:  # a file write: off the loop
            await self._writes.run(self.cooldown.mark_surveyed, caller, ts)
        except Exception:  # a dead cooldown store costs a cooldown entry, never the result
            log.exception("could not record the survey in the cooldown store")

    def _emit(self, rec: SurveyResultRecord) -> None:
        self.stats["results"] += 1
        t0 = time.perf_counter()
        try:
            self.on_result(rec)
        except Exception:  # the sink is someone else's; its failure must not hurt the next caller
            log.exception("survey result sink failed")
        spent = time.perf_counter() - t0
        if spent > self.work_deadline_s:
            # The caller had already been handed back; but a sink this slow stalls every other conversation.
            log.warning("survey result sink took %.1fs (it must not block)", spent)

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
