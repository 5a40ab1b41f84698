"""Tiny builders of AMI header dicts shaped like the recorded Asterisk 22 events (for edge cases)."""

from __future__ import annotations

from typing import Any


class CallBuilder:
    """Events of one inbound call on channel ``chan`` (Uniqueid ``uid``, Linkedid ``lid``)."""

    def __init__(self, uid: str, lid: str | None = None, num: str = "5550100", chan: str | None = None) -> None:
        self.uid, self.lid, self.num = uid, lid or uid, num
        self.chan = chan or f"PJSIP/trunk-{uid.replace('.', '')}"

    def snap(self, **extra: Any) -> dict[str, Any]:
        """The channel snapshot plus extra headers."""
        return {"Channel": self.chan, "CallerIDNum": self.num, "CallerIDName": "Caller", "Context": "in",
                "Exten": "s", "Uniqueid": self.uid, "Linkedid": self.lid, **{k: str(v) for k, v in extra.items()}}

    def ev(self, name: str, ts: float, **extra: Any) -> dict[str, Any]:
        """An event on this call's channel."""
        return {"Event": name, "Timestamp": f"{ts:.6f}", **self.snap(**extra)}

    def queue_app(self, ts: float, queue: str) -> dict[str, Any]:
        """Newexten Queue(queue)."""
        return self.ev("Newexten", ts, Application="Queue", AppData=f"{queue},c")

    def join(self, ts: float, queue: str, pos: int = 1) -> dict[str, Any]:
        """QueueCallerJoin."""
        return self.ev("QueueCallerJoin", ts, Queue=queue, Position=pos, Count=pos)

    def leave(self, ts: float, queue: str, pos: int = 1) -> dict[str, Any]:
        """QueueCallerLeave."""
        return self.ev("QueueCallerLeave", ts, Queue=queue, Position=pos, Count=0)

    def abandon(self, ts: float, queue: str, hold: int, pos: int = 1) -> dict[str, Any]:
        """QueueCallerAbandon."""
        return self.ev("QueueCallerAbandon", ts, Queue=queue, Position=pos, OriginalPosition=pos, HoldTime=hold)

    def status(self, ts: float, value: str) -> dict[str, Any]:
        """VarSet QUEUESTATUS."""
        return self.ev("VarSet", ts, Variable="QUEUESTATUS", Value=value)

    def agent(self, name: str, ts: float, queue: str, member: str, **extra: Any) -> dict[str, Any]:
        """An Agent* event for member ``member`` (member channel uid = uid + '9')."""
        return self.ev(name, ts, Queue=queue, MemberName=member, Interface=f"PJSIP/{member}",
                       DestChannel=f"PJSIP/{member}-0001", DestUniqueid=self.uid + "9", **extra)

    def hangup(self, ts: float) -> dict[str, Any]:
        """Hangup of the caller channel."""
        return self.ev("Hangup", ts, Cause=16)

    def answered(self, t0: float, queue: str = "support", member: str = "alice", hold: int = 3,
                 talk: int = 30) -> list[dict[str, Any]]:
        """A whole answered call completed by the agent."""
        return [
            self.queue_app(t0, queue), self.join(t0, queue),
            self.agent("AgentCalled", t0 + 0.1, queue, member),
            self.leave(t0 + hold, queue),
            self.agent("AgentConnect", t0 + hold, queue, member, HoldTime=hold, RingTime=hold),
            self.agent("AgentComplete", t0 + hold + talk, queue, member, HoldTime=hold, TalkTime=talk,
                       Reason="agent"),
            self.status(t0 + hold + talk, "CONTINUE"),
            self.hangup(t0 + hold + talk + 1),
        ]


def member_pause(agent: str, reason: str, ts: float, queue: str = "support") -> dict[str, str]:
    """QueueMemberPause (Paused 1) of a ``Local/<agent>@lab-agents/n`` member, as in member_changes.ami."""
    return {"Event": "QueueMemberPause", "Privilege": "agent,all", "Timestamp": f"{ts:.6f}", "Queue": queue,
            "MemberName": agent, "Interface": f"Local/{agent}@lab-agents/n",
            "StateInterface": f"Local/{agent}@lab-agents/n", "Membership": "dynamic", "Penalty": "0",
            "CallsTaken": "0", "LastCall": "0", "LastPause": str(int(ts)), "LoginTime": str(int(ts) - 60),
            "InCall": "0", "Status": "1", "Paused": "1", "PausedReason": reason, "Ringinuse": "0",
            "Wrapuptime": "0"}
