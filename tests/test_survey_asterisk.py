"""The shipped Asterisk files, checked by parsing them (Asterisk cannot run here)."""

from __future__ import annotations

import json
import re
import wave
from pathlib import Path

import pytest

from monitor.core.survey import DEFAULT_PROMPT_FILES
from tests.support.calls import FIXTURES

AST = Path(__file__).parent.parent / "asterisk"


def parse_conf(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Asterisk .conf -> {section: [(key, value)]}, comments stripped, ``=>`` and ``=`` alike."""
    out: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if m := re.fullmatch(r"\[([^\]]+)\](\([^)]*\))?", line):
            section = m.group(1)
            out.setdefault(section, [])
            continue
        key, _, value = line.partition("=>") if "=>" in line else line.partition("=")
        out.setdefault(section, []).append((key.strip(), value.strip()))
    return out


# -- a tiny dialplan interpreter: enough to walk our contexts with a scripted outcome per application --

def dialplan() -> dict[str, dict[str, list[tuple[str | None, str, str]]]]:
    """{context: {exten: [(label, app, args)]}} from extensions_qmon.conf."""
    ctxs: dict[str, dict[str, list[tuple[str | None, str, str]]]] = {}
    last: list[tuple[str | None, str, str]] = []
    for section, items in parse_conf(AST / "extensions_qmon.conf").items():
        ctxs[section] = {}
        for key, value in items:
            if key not in ("exten", "same"):
                continue
            if key == "exten":
                ext, prio, rest = value.split(",", 2)
                last = ctxs[section].setdefault(ext, [])
                assert prio == "1"
            else:
                prio, rest = value.split(",", 1)
                assert prio.startswith("n")
            label = re.fullmatch(r"n\(([^)]+)\)", prio)
            app, _, args = rest.partition("(")
            last.append((label.group(1) if label else None, app, args[:-1]))
    return ctxs


def _expand(text: str, v: dict[str, str]) -> str:
    for _ in range(20):
        # Innermost variables first, then expressions whose operands are now plain strings.
        new = re.sub(r"\$\{([^{}$]*)\}", lambda m: _var(m.group(1), v), text)
        if new == text:
            new = re.sub(r"\$\[([^\[\]$]*)\]", lambda m: _cond(m.group(1)), new)
        if new == text:
            return new
        text = new
    raise AssertionError(text)


def _cond(expr: str) -> str:
    ok = True
    for part in expr.split("&"):
        m = re.fullmatch(r'\s*"([^"]*)"\s*(!=|=)\s*"([^"]*)"\s*', part)
        assert m, part
        ok &= (m.group(1) == m.group(3)) == (m.group(2) == "=")
    return "1" if ok else "0"


def _var(name: str, v: dict[str, str]) -> str:
    if m := re.fullmatch(r"IF\((\d)\?([^:]*):(.*)\)", name):
        return m.group(2) if m.group(1) == "1" else m.group(3)
    return v.get(name, "")


def walk(ctx: str, exten: str, v: dict[str, str], apps: dict[str, dict[str, str]]) -> list[str]:
    """Run an extension; ``apps`` gives the variables each application sets. Returns 'App(args)' lines."""
    plan = dialplan()
    v = dict(v) | {"EXTEN": exten}
    for p in plan[ctx]:
        if p == exten or (p.startswith("_") and re.fullmatch(p[1:].replace(".", ".+"), exten)):
            prios = plan[ctx][p]
            break
    else:
        raise AssertionError(f"no {exten} in {ctx}")
    trace, i = [], 0
    while i < len(prios):
        _, app, args = prios[i]
        args = _expand(args, v)
        trace.append(f"{app}({args})")
        i += 1
        if app == "Set":
            key, _, val = args.partition("=")
            v[key.lstrip("_")] = val
        elif app == "GotoIf":
            cond, _, target = args.partition("?")
            dest = target.split(":")[0 if cond == "1" else 1] if ":" in target else (target if cond == "1" else "")
            if dest:
                i = [lbl for lbl, _, _ in prios].index(dest)
        elif app == "Hangup":
            break
        v.update(apps.get(app, {}))
        if apps.get(app, {}).get("_hangup"):
            break
    return trace


BASE = {"QMON_AGI": "agi://127.0.0.1:4573", "QMON_DEFAULT_LANG": "en", "CHANNEL(linkedid)": "L1",
        "CHANNEL(language)": "pl"}


def test_queue_uses_option_c_then_the_agi() -> None:
    t = walk("qmon-queue", "support", BASE, {"Queue": {"QUEUESTATUS": "CONTINUE"},
                                             "AGI": {"AGISTATUS": "SUCCESS", "QMON_SURVEY_STATUS": "completed"}})
    queue = next(x for x in t if x.startswith("Queue("))
    assert "c" in queue.split(",")[1]
    assert t.index(queue) < t.index("AGI(agi://127.0.0.1:4573/csat,L1,support,pl)")
    assert t[-1] == "Hangup()" and not any("goodbye" in x for x in t)  # qmon said thanks itself
    assert any(x.startswith("Set(TIMEOUT(absolute)=") for x in t)


@pytest.mark.parametrize("agi", [{"AGISTATUS": "FAILURE"}, {"AGISTATUS": "SUCCESS"}, {"AGISTATUS": "NOTFOUND"}])
def test_qmon_down_or_silent_means_goodbye_then_hangup(agi: dict[str, str]) -> None:
    t = walk("qmon-queue", "support", BASE, {"Queue": {"QUEUESTATUS": "CONTINUE"}, "AGI": agi})
    assert t[-2:] == ["Playback(qmon/pl/goodbye)", "Hangup()"]


def test_absolute_timeout_says_goodbye_and_unanswered_goes_to_voicemail() -> None:
    assert walk("qmon-queue", "T", {"QMON_LANG": "en"}, {}) == ["Playback(qmon/en/goodbye)", "Hangup()"]
    t = walk("qmon-queue", "support", BASE | {"CHANNEL(language)": "de"}, {"Queue": {"QUEUESTATUS": "TIMEOUT"}})
    assert not any(x.startswith("AGI") for x in t) and any(x.startswith("VoiceMail") for x in t)


def test_callback_context_runs_the_callback_agi_with_its_token() -> None:
    t = walk("qmon-survey-callback", "s", BASE | {"QMON_SURVEY_TOKEN": "abc", "QMON_QUEUE": "support"},
             {"AGI": {"AGISTATUS": "FAILURE"}})
    assert "AGI(agi://127.0.0.1:4573/csat-callback,abc,support,en)" in t
    assert t[-2:] == ["Playback(qmon/en/goodbye)", "Hangup()"]


def test_manager_conf_is_least_privilege() -> None:
    conf = dict(parse_conf(AST / "manager.conf")["qmon"])
    read = set(conf["read"].split(","))
    assert read == {"call", "agent", "dialplan", "user"}
    assert conf["write"] == "reporting"  # originate only when callbacks are on (commented alternative)
    assert "write = reporting,originate" in (AST / "manager.conf").read_text()
    assert conf["permit"].startswith("127.0.0.1") and conf["deny"].startswith("0.0.0.0")
    assert conf["secret"] == "CHANGE-ME"
    # Every event class the tracker needs is readable: the truth is the Privilege header in real captures.
    needed = {"QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentCalled", "AgentConnect",
              "AgentComplete", "AgentRingNoAnswer", "QueueMemberAdded", "QueueMemberPause", "QueueMemberRemoved",
              "VarSet", "Newexten", "UserEvent", "Hangup", "Newchannel", "BlindTransfer", "AttendedTransfer",
              "MessageWaiting", "BridgeEnter", "LocalOptimizationEnd", "OriginateResponse"}
    seen: dict[str, str] = {}
    for path in FIXTURES.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            msg = json.loads(line)
            if msg.get("Event") in needed and "Privilege" in msg:
                seen[msg["Event"]] = msg["Privilege"].split(",")[0]
    assert needed <= set(seen) and set(seen.values()) <= read


def test_queues_conf_sample() -> None:
    conf = parse_conf(AST / "queues.conf")
    assert {"general", "support", "sales"} <= set(conf)
    assert dict(conf["qmon-defaults"])["servicelevel"] == "20"


def test_prompts_exist_for_every_key_in_english_and_polish_as_8khz_mono_wav() -> None:
    lines = [ln.split("|") for ln in (AST / "sounds" / "prompts.txt").read_text().splitlines()
             if ln and not ln.startswith("#")]
    for lang in ("en", "pl"):
        names = {name for lg, name, _ in lines if lg == lang}
        assert names == set(DEFAULT_PROMPT_FILES.values())
        for name in names:
            with wave.open(str(AST / "sounds" / lang / f"{name}.wav")) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
                assert 0.5 < w.getnframes() / 8000 < 20  # a real, short prompt
    assert "espeak-ng" in (AST / "sounds" / "generate.sh").read_text()
