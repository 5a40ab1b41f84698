"""An AMI peer that answers ``Originate`` as Asterisk 22 did (the real daemon's AMI connection logs in to it).

:class:`OriginatePeer` runs :class:`tests.support.amiserver.AmiTestServer` with an ``Originate`` handler:

* the reply, at once, as ``astman_send_ack``/``astman_send_error`` write it: ``Response: Success`` /
  ``ActionID`` / ``Message: Originate successfully queued`` (``Response: Error`` / ``Message: Permission
  denied`` for a refused one);
* later, on a virtual clock, the ``OriginateResponse`` event in the shapes recorded from Asterisk 22
  (``fixtures/ami22/e_callback*.qmon.ami``, qmon's own ``qmon-cb-…`` ActionIDs): ``Response: Success`` +
  ``Reason: 4`` when the callee answers (after ``after_s``), ``Response: Failure`` + ``Reason: 3`` +
  ``Uniqueid: <unknown>`` + the requested ``Channel`` when nobody answered within the action's own ``Timeout``
  (recorded 30.03 s after the dial for ``Timeout: 30000``). Busy (5) and congestion (8) were not recorded: they
  take the recorded Failure shape with their code (``fast_originate`` prints every outcome with one format).

Every Originate received and every OriginateResponse sent is logged on the virtual clock (:attr:`timeline`), so a
test can prove that no two attempts for one number were ever in flight together.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor.ami.wire import Headers, WireParser, first
from tests.support.amiserver import AmiTestServer
from tests.support.helpers import until

AMI22 = Path(__file__).parent.parent / "fixtures" / "ami22"
CALLBACK_RECORDINGS = ("e_callback", "e_callback_noanswer", "e_callback_late_answer")


async def poll(cond: Callable[[], object], limit_s: float = 5.0, what: str = "condition") -> None:
    """:func:`tests.support.helpers.until` at this peer's pace (every 5 ms, 5 s by default)."""
    await until(cond, limit_s, what, every_s=0.005)


def read_ami(name: str) -> list[Headers]:
    """Every message of one recorded ``fixtures/ami22/<name>.qmon.ami`` session."""
    return WireParser().feed((AMI22 / f"{name}.qmon.ami").read_bytes())


def recorded_originate_responses() -> list[Headers]:
    """The OriginateResponse events Asterisk 22 sent for qmon's own callback Originates, in order."""
    return [m for n in CALLBACK_RECORDINGS for m in read_ami(n)
            if m.get("Event") == "OriginateResponse" and str(m.get("ActionID", "")).startswith("qmon-cb-")]


def _template(response: str, reason: str) -> Headers:
    recorded = recorded_originate_responses()
    for m in recorded:
        if m.get("Response") == response and m.get("Reason") == reason:
            return dict(m)
    base = next(m for m in recorded if m.get("Response") == response)
    return dict(base) | {"Reason": reason}


@dataclass(frozen=True)
class Outcome:
    """What the called number does on one attempt."""

    kind: str  # answer | noanswer | busy | congestion | refuse (Response: Error) | lost (no event ever)
    after_s: float = 0.0  # answer / busy / congestion: seconds after the dial


ANSWER = Outcome("answer", 2.0)  # recorded: answered 2.0 s after Newchannel
NO_ANSWER = Outcome("noanswer")
BUSY = Outcome("busy", 1.0)


class Clock:
    """The daemon's clock in these tests: virtual seconds, advanced by the test."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class OriginatePeer:
    """Asterisk's side of callback Originates (see the module docstring)."""

    def __init__(self, clock: Clock, script: dict[str, list[Outcome]]) -> None:
        self.clock = clock
        self.script = {n: list(outs) for n, outs in script.items()}
        self.server = AmiTestServer(handlers={"originate": self._on_originate})
        # (t, what, ActionID, number): what = Originate | OriginateResponse | lost (ringing ended, event not sent)
        self.timeline: list[tuple[float, str, str, str]] = []
        self._due: list[tuple[float, int, str, Headers, bool]] = []  # (at, seq, number, event, delivered)
        self._seq = itertools.count()
        self._uid = itertools.count(82)

    async def start(self) -> OriginatePeer:
        """Listen on a free loopback port."""
        await self.server.start()
        return self

    async def close(self) -> None:
        """Stop listening."""
        await self.server.close()

    @property
    def port(self) -> int:
        """The AMI port."""
        return self.server.port

    def originates(self) -> list[Headers]:
        """Every Originate received, in order."""
        return self.server.actions_named("Originate")

    def _on_originate(self, action: Headers) -> list[Headers]:
        now = self.clock()
        aid, channel = first(action.get("ActionID")) or "", first(action.get("Channel")) or ""
        number = channel.split("/", 1)[-1].split("@", 1)[0]
        self.timeline.append((now, "Originate", aid, number))
        plan = self.script.get(number) or [NO_ANSWER]
        out = plan.pop(0) if len(plan) > 1 else plan[0]
        if out.kind == "refuse":
            return [{"Response": "Error", "Message": "Permission denied"}]
        ring_s = int(first(action.get("Timeout")) or "30000") / 1000  # manager.c: 30000 ms when absent
        if out.kind == "answer":
            assert out.after_s < ring_s, "an answer after the Timeout is a no-answer"
            ev, at = _template("Success", "4"), now + out.after_s
            uid = f"{int(now)}.{next(self._uid)}"
            ev |= {"Channel": f"{channel.removesuffix('/n')}-{next(self._uid):08x};1", "Uniqueid": uid}
        elif out.kind in ("noanswer", "busy", "congestion"):
            code = {"noanswer": "3", "busy": "5", "congestion": "8"}[out.kind]
            ev = _template("Failure", code) | {"Channel": channel}  # the requested channel, as recorded
            at = now + (ring_s + 0.03 if out.kind == "noanswer" else out.after_s)  # recorded: 30.03 s
        else:  # lost: Asterisk stops ringing at the Timeout, but its event never reaches qmon (session dropped)
            ev, at = _template("Failure", "3") | {"Channel": channel}, now + ring_s + 0.03
        ev |= {"ActionID": aid, "Context": first(action.get("Context")) or "",
               "Exten": first(action.get("Exten")) or ""}
        heapq.heappush(self._due, (at, next(self._seq), number, ev, out.kind != "lost"))
        return [{"Response": "Success", "Message": "Originate successfully queued"}]

    def next_event_at(self) -> float | None:
        """Virtual time of the next scheduled OriginateResponse."""
        return self._due[0][0] if self._due else None

    async def advance(self, t: float) -> int:
        """Move the clock to ``t`` and send every OriginateResponse due by then; returns how many were sent."""
        sent = 0
        while self._due and self._due[0][0] <= t:
            at, _, number, ev, delivered = heapq.heappop(self._due)
            self.clock.t = max(self.clock.t, at)
            ev["Timestamp"] = f"{at:.6f}"
            self.timeline.append((at, "OriginateResponse" if delivered else "lost", str(ev["ActionID"]), number))
            if delivered:
                await self.server.push(ev)
                sent += 1
        self.clock.t = max(self.clock.t, t)
        return sent

    def overlaps(self) -> list[tuple[str, str, str]]:
        """(number, ActionID, ActionID) for every Originate sent while an earlier one to that number still rang."""
        open_: dict[str, str] = {}  # number -> ActionID in flight on Asterisk's side
        bad = []
        for _, what, aid, number in sorted(self.timeline, key=lambda e: (e[0], e[1] == "Originate")):
            if what == "Originate":
                if number in open_:
                    bad.append((number, open_[number], aid))
                open_[number] = aid
            elif open_.get(number) == aid:
                del open_[number]
        return bad
