"""The shipped Asterisk files, checked by parsing and walking them (Asterisk cannot run here)."""

from __future__ import annotations

import importlib.util
import json
import re
import wave
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from monitor.core.survey import DEFAULT_PROMPT_FILES
from tests.support.calls import FIXTURES

AST = Path(__file__).parent.parent / "asterisk"
LANGS = ("en", "pl", "ro", "ru")


def parse_conf(path: Path, templates: bool = False) -> dict[str, list[tuple[str, str]]]:
    """Asterisk .conf -> {section: [(key, value)]}, comments stripped, ``=>`` and ``=`` alike.

    ``templates``: a ``[name](tpl)`` section starts with its template's lines, as Asterisk's config.c does.
    """
    out: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if m := re.fullmatch(r"\[([^\]]+)\](?:\(([^)]*)\))?", line):
            section = m.group(1)
            inherit = [t for t in (m.group(2) or "").split(",") if t and t != "!"]
            out.setdefault(section, [])
            if templates:
                for tpl in inherit:
                    out[section] += out[tpl]
            continue
        key, _, value = line.partition("=>") if "=>" in line else line.partition("=")
        out.setdefault(section, []).append((key.strip(), value.strip()))
    return out


def _defaults() -> dict[str, str]:
    """The QMON_* defaults [qmon-defaults] fills in (the file has no [globals]: see test_no_globals_section)."""
    out = {}
    for _, value in parse_conf(AST / "extensions_qmon.conf")["qmon-defaults"]:
        if m := re.search(r"Set\((QMON_\w+)=([^)]*)\)", value):
            out[m.group(1)] = m.group(2)
    return out


# -- a small dialplan interpreter: enough to walk our contexts with a scripted outcome per application --

Prio = tuple[str | None, str, str]


def dialplan() -> dict[str, dict[str, list[Prio]]]:
    """{context: {exten: [(label, app, args)]}} from extensions_qmon.conf."""
    ctxs: dict[str, dict[str, list[Prio]]] = {}
    last: list[Prio] = []
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
            assert args.endswith(")"), rest
            last.append((label.group(1) if label else None, app, args[:-1]))
    return ctxs


def _expand(text: str, v: dict[str, str]) -> str:
    for _ in range(50):
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
    if m := re.fullmatch(r"FIELDNUM\(([^,]+),(.),(.*)\)", name):
        fields = v.get(m.group(1), "").split(m.group(2))
        return str(fields.index(m.group(3)) + 1) if m.group(3) in fields else "0"
    assert "(" not in name or name in v or name.startswith(("CALLERID(", "CHANNEL(")), f"unknown function {name}"
    return v.get(name, "")


def _find(plan: dict[str, dict[str, list[Prio]]], ctx: str, exten: str) -> list[Prio]:
    for p in plan[ctx]:
        if p == exten or (p.startswith("_") and re.fullmatch(p[1:].replace(".", ".+"), exten)):
            return plan[ctx][p]
    raise AssertionError(f"no {exten} in {ctx}")


class Walk:
    """Runs one channel through the dialplan. ``apps`` gives the variables each application sets; the special
    keys ``_hangup`` (the caller hangs up during it) and ``_timeout`` (TIMEOUT(absolute) fires during it)."""

    def __init__(self, v: dict[str, str], apps: dict[str, dict[str, Any]]) -> None:
        self.v = dict(v)  # the defaults come from the dialplan's own [qmon-defaults]
        self.apps = apps
        self.trace: list[str] = []
        self.handlers: list[str] = []
        self.cdr: dict[str, str] = {}
        self.plan = dialplan()

    def run(self, ctx: str, exten: str, args: tuple[str, ...] = ()) -> str:
        """Run from ``ctx,exten,1``; returns how it ended: hangup, return, stuck, empty-stack."""
        self.v.update({f"ARG{i}": a for i, a in enumerate(args, 1)} | {"EXTEN": exten})
        prios, i = _find(self.plan, ctx, exten), 0
        while i < len(prios):
            _, app, raw = prios[i]
            i += 1
            ended = self._exec(app, _expand(raw, self.v))
            if ended == "goto":
                i = [lbl for lbl, _, _ in prios].index(self.v.pop("_goto"))
            elif ended == "timeout":
                prios, i = _find(self.plan, ctx, "T"), 0
                self.v["EXTEN"] = "T"
            elif ended:
                return ended
        return "fell-off"

    def _exec(self, app: str, args: str) -> str | None:
        self.trace.append(f"{app}({args})")
        if app == "ExecIf":
            cond, _, inner = args.partition("?")
            if cond == "1":
                name, _, rest = inner.partition("(")
                return self._exec(name, rest[:-1])
            return None
        if app == "Set":
            self._set(*args.split("=", 1))
            return None
        if app == "GotoIf":
            cond, _, target = args.partition("?")
            dest = target.split(":")[0 if cond == "1" else 1] if ":" in target else (target if cond == "1" else "")
            if dest:
                self.v["_goto"] = dest
                return "goto"
            return None
        if app == "Gosub":
            m = re.fullmatch(r"([^,]+),([^,]+),1(?:\((.*)\))?", args)
            assert m, args
            saved = {k: self.v.get(k, "") for k in ("ARG1", "ARG2", "EXTEN")}
            ended = self.run(m.group(1), m.group(2), tuple((m.group(3) or "").split(",")) if m.group(3) else ())
            self.v.update(saved)
            return None if ended == "return" else ended
        if app == "Return":
            return "return"
        if app == "Hangup":
            return self._hangup()
        out = self.apps.get(app, {})
        self.v.update({k: val for k, val in out.items() if not k.startswith("_")})
        if out.get("_timeout"):
            if app == "AGI" and self.v.get("AGIEXITONHANGUP") != "yes":
                self.trace.append("STUCK in AGI() after TIMEOUT(absolute)")
                return "stuck"
            return "timeout"
        if out.get("_hangup"):
            return self._hangup()
        return None

    def _set(self, key: str, value: str) -> None:
        if key == "CHANNEL(hangup_handler_push)":
            self.handlers.append(value)
        elif key == "CHANNEL(hangup_handler_pop)":
            self.handlers.pop()
        elif m := re.fullmatch(r"CDR\((\w+)\)", key):
            self.cdr[m.group(1)] = value
        else:
            self.v[key.lstrip("_")] = value

    def _hangup(self) -> str:
        while self.handlers:  # hangup handlers run last-pushed first, each until its Return()
            ctx, exten, _ = self.handlers.pop().split(",")
            assert self.run(ctx, exten) == "return"
        return "hangup"


BASE = {"CHANNEL(linkedid)": "L1", "CHANNEL(language)": "pl"}
ANSWERED = {"Queue": {"QUEUESTATUS": "CONTINUE"}}
COMPLETED = {"AGI": {"AGISTATUS": "SUCCESS", "QMON_SURVEY_STATUS": "completed", "QMON_CSAT": "4"}}


def test_wrapper_queues_with_option_c_then_surveys_and_writes_the_cdr() -> None:
    w = Walk(BASE, ANSWERED | COMPLETED)
    assert w.run("qmon-queue", "support") == "hangup"
    queue = next(x for x in w.trace if x.startswith("Queue("))
    assert "c" in queue.split(",")[1]
    agi = "AGI(agi://127.0.0.1:4573/csat,L1,support,pl)"
    assert w.trace.index(queue) < w.trace.index(agi)
    assert not any("goodbye" in x for x in w.trace)  # qmon said thanks itself
    assert w.cdr == {"userfield": "qmon:completed:4"}
    assert w.handlers == []  # popped once written: it must not overwrite what the site does next


def test_unanswered_returns_to_the_sites_own_dialplan_no_mailbox_of_ours() -> None:
    for status in ("TIMEOUT", "JOINEMPTY", "LEAVEEMPTY", "FULL"):
        w = Walk(BASE, {"Queue": {"QUEUESTATUS": status}})
        assert w.run("qmon-queue", "sales") == "return"
        assert not any(x.startswith(("AGI", "VoiceMail", "Hangup")) for x in w.trace), w.trace
    text = (AST / "extensions_qmon.conf").read_text()
    assert not [ln for ln in text.splitlines() if "VoiceMail(" in ln and not ln.lstrip().startswith(";")]


def test_after_queue_is_callable_after_the_sites_own_queue() -> None:
    """FreePBX / an existing dialplan keeps its Queue(); only the next priority calls us."""
    w = Walk(BASE | {"QUEUESTATUS": "CONTINUE"}, COMPLETED)
    assert w.run("qmon-after-queue", "400") == "hangup"
    assert "AGI(agi://127.0.0.1:4573/csat,L1,400,pl)" in w.trace
    w = Walk(BASE | {"QUEUESTATUS": "TIMEOUT"}, COMPLETED)
    assert w.run("qmon-after-queue", "400") == "return" and len(w.trace) == 2


def test_survey_subroutine_returns_to_its_caller_with_the_result() -> None:
    w = Walk(BASE | {"CHANNEL(language)": "ru"}, COMPLETED)
    assert w.run("qmon-survey", "s", ("support",)) == "return"
    assert "AGI(agi://127.0.0.1:4573/csat,L1,support,ru)" in w.trace
    assert w.v["TIMEOUT(absolute)"] == "0"  # disarmed: the rest of the call belongs to the site
    w = Walk(BASE, COMPLETED)
    w.run("qmon-survey", "s", ("support", "ro"))  # an explicit language wins over the channel's
    assert "AGI(agi://127.0.0.1:4573/csat,L1,support,ro)" in w.trace


@pytest.mark.parametrize("lang,expected", [("de", "en"), ("", "en"), ("pl", "pl"), ("ro", "ro"), ("ru", "ru")])
def test_language_falls_back_to_the_default_unless_installed(lang: str, expected: str) -> None:
    w = Walk(BASE | {"CHANNEL(language)": lang}, {"AGI": {"AGISTATUS": "FAILURE"}})
    w.run("qmon-survey", "s", ("support",))
    assert f"Playback(qmon/{expected}/goodbye)" in w.trace


def test_no_globals_section_defaults_yield_to_the_sites_globals() -> None:
    """A second [globals] in an #included file does not merge into the site's: the file carries none."""
    assert "globals" not in parse_conf(AST / "extensions_qmon.conf")
    assert set(_defaults()) >= {"QMON_AGI", "QMON_LANGS", "QMON_DEFAULT_LANG", "QMON_SOUNDS", "QMON_SURVEY_TIMEOUT",
                                "QMON_CALLBACK_TIMEOUT", "QMON_CDR_FIELD", "QMON_QUEUE_MAXWAIT"}
    w = Walk(BASE, COMPLETED)
    w.run("qmon-survey", "s", ("support",))
    assert w.v["QMON_AGI"] == "agi://127.0.0.1:4573" and w.v["QMON_CDR_FIELD"] == "userfield"
    site = {"QMON_AGI": "agi://10.0.0.5:4573", "QMON_SURVEY_TIMEOUT": "95", "QMON_LANGS": "en/de"}
    w = Walk(BASE | site | {"CHANNEL(language)": "de"}, COMPLETED)
    w.run("qmon-survey", "s", ("support",))
    assert "AGI(agi://10.0.0.5:4573/csat,L1,support,de)" in w.trace and "Set(TIMEOUT(absolute)=95)" in w.trace
    for ctx in ("qmon-survey", "qmon-queue", "qmon-survey-callback"):  # every entry point loads the defaults
        first = next(iter(dialplan()[ctx].values()))
        assert ("Gosub", "qmon-defaults,s,1") in [(a, x) for _, a, x in first[:2]], ctx


def test_dialplan_prompts_are_where_qmon_plays_its_own() -> None:
    from monitor.settings import SurveySettings

    sounds = _defaults()["QMON_SOUNDS"]
    assert SurveySettings().prompt_path.format(lang="en", name="goodbye") == f"{sounds}/en/goodbye"
    w = Walk(BASE | {"QMON_SOUNDS": "/usr/local/share/qmon/sounds"}, {"AGI": {"AGISTATUS": "FAILURE"}})
    w.run("qmon-survey", "s", ("support",))
    assert "Playback(/usr/local/share/qmon/sounds/pl/goodbye)" in w.trace
    text = (AST / "extensions_qmon.conf").read_text()
    assert "Playback(qmon/" not in text  # every Playback follows QMON_SOUNDS


@pytest.mark.parametrize("agi", [{"AGISTATUS": "FAILURE"}, {"AGISTATUS": "SUCCESS"}, {"AGISTATUS": "NOTFOUND"}])
def test_qmon_down_or_silent_means_goodbye_then_hangup(agi: dict[str, str]) -> None:
    w = Walk(BASE, ANSWERED | {"AGI": agi})
    assert w.run("qmon-queue", "support") == "hangup"
    assert w.trace[-3:] == ["Playback(qmon/pl/goodbye)", "Return()", "Hangup()"]
    assert w.cdr["userfield"] == f"qmon:agi_{agi['AGISTATUS']}:"


def test_overloaded_qmon_says_goodbye_itself_and_the_cdr_says_why() -> None:
    """Beyond survey.max_sessions qmon sets QMON_SURVEY_STATUS=overloaded and plays goodbye: not twice."""
    w = Walk(BASE, ANSWERED | {"AGI": {"AGISTATUS": "SUCCESS", "QMON_SURVEY_STATUS": "overloaded"}})
    assert w.run("qmon-queue", "support") == "hangup"
    assert not any("goodbye" in x for x in w.trace)
    assert w.cdr["userfield"] == "qmon:overloaded:"


def test_qmon_hung_the_timeout_ends_agi_and_says_goodbye() -> None:
    """Live Asterisk 22: without AGIEXITONHANGUP the channel stayed in AGI() after the timeout."""
    w = Walk(BASE, ANSWERED | {"AGI": {"_timeout": True}})
    assert w.run("qmon-queue", "support") == "hangup"
    assert w.trace[-2:] == ["Playback(qmon/pl/goodbye)", "Hangup()"]
    assert w.cdr["userfield"] == "qmon:timeout:"
    w = Walk(BASE, {"AGI": {"_timeout": True, "QMON_SURVEY_STATUS": "partial", "QMON_CSAT": "5"}})
    w.run("qmon-survey", "s", ("support",))
    assert w.cdr["userfield"] == "qmon:partial:5"  # what qmon had already set is kept


def test_caller_hangs_up_mid_survey_the_hangup_handler_writes_the_cdr() -> None:
    w = Walk(BASE, ANSWERED | {"AGI": {"_hangup": True, "AGISTATUS": "HANGUP"}})
    assert w.run("qmon-queue", "support") == "hangup"
    assert w.cdr == {"userfield": "qmon:agi_HANGUP:"}
    w = Walk(BASE | {"QMON_CDR_FIELD": "qmon"}, ANSWERED | {"AGI": {
        "_hangup": True, "AGISTATUS": "HANGUP", "QMON_SURVEY_STATUS": "completed", "QMON_CSAT": "2"}})
    w.run("qmon-queue", "support")
    assert w.cdr == {"qmon": "qmon:completed:2"}  # a configured CDR variable instead of the userfield


def test_every_agi_exits_on_hangup_under_a_short_absolute_timeout() -> None:
    budget = _budget_module()
    durations = json.loads((AST / "sounds" / "durations.json").read_text())
    g = _defaults()
    limits = {"csat": int(g["QMON_SURVEY_TIMEOUT"]), "csat-callback": int(g["QMON_CALLBACK_TIMEOUT"])}
    assert limits == {"csat": budget.budget_s(durations, ["csat"], 5000),
                      "csat-callback": budget.budget_s(durations, ["csat"], 5000, callback=True)}
    assert max(limits.values()) < 90  # was 120 s of possible silence
    agis = 0
    for ctx, extens in dialplan().items():
        for exten, prios in extens.items():
            for n, (_, app, args) in enumerate(prios):
                if app != "AGI":
                    continue
                agis += 1
                before = [f"{a}({x})" for _, a, x in prios[:n]]
                assert "Set(AGIEXITONHANGUP=yes)" in before, (ctx, exten)
                kind = args.split("/")[-1].split(",")[0]
                var = "QMON_CALLBACK_TIMEOUT" if kind == "csat-callback" else "QMON_SURVEY_TIMEOUT"
                assert f"Set(TIMEOUT(absolute)=${{{var}}})" in before, (ctx, exten)
                assert "T" in extens, f"{ctx} has no T extension for the timeout"
                assert "Set(CHANNEL(hangup_handler_push)=qmon-survey-cdr,s,1)" in before
                after = [f"{a}({x})" for _, a, x in prios[n:]]
                assert "Gosub(qmon-survey-cdr,s,1)" in after
    assert agis == 2


def test_callback_context_runs_the_callback_agi_with_its_token() -> None:
    w = Walk(BASE | {"QMON_SURVEY_TOKEN": "abc", "QMON_QUEUE": "support"}, {"AGI": {"AGISTATUS": "FAILURE"}})
    assert w.run("qmon-survey-callback", "s") == "hangup"
    assert "AGI(agi://127.0.0.1:4573/csat-callback,abc,support,en)" in w.trace
    assert w.trace[-2:] == ["Playback(qmon/en/goodbye)", "Hangup()"]
    w = Walk(BASE | {"QMON_SURVEY_TOKEN": "abc", "QMON_LANG": "ro"}, COMPLETED)
    w.run("qmon-survey-callback", "s")
    assert w.cdr == {"userfield": "qmon:completed:4"} and "AGI(agi://127.0.0.1:4573/csat-callback,abc,,ro)" in w.trace


def test_manager_conf_is_least_privilege_and_has_no_general_section() -> None:
    sections = parse_conf(AST / "manager.conf")
    assert set(sections) == {"qmon"}  # a [general] would clash with the site's own
    conf = dict(sections["qmon"])
    read = set(conf["read"].split(","))
    assert read == {"call", "agent", "dialplan", "user"}
    assert conf["write"] == "reporting"  # originate only when callbacks are on (commented alternative)
    text = (AST / "manager.conf").read_text()
    assert "write = reporting,originate" in text and "manager_custom.conf" in text and "FullyBooted" in text
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
    fully_booted = {json.loads(ln).get("Privilege", "") for p in FIXTURES.glob("*.jsonl")
                    for ln in p.read_text().splitlines() if '"FullyBooted"' in ln}
    assert fully_booted and all(p.split(",")[0] == "system" for p in fully_booted)  # why qmon never sees it


def _queue_params() -> dict[str, dict[str, str]]:
    """QueueParams of the recorded Asterisk 22 QueueStatus reply, by queue."""
    text = (FIXTURES / "queuestatus_asterisk22.ami").read_bytes().decode().replace("\r\n", "\n")
    out = {}
    for block in text.split("\n\n"):
        h = dict(ln.split(": ", 1) for ln in block.strip().splitlines() if ": " in ln)
        if h.get("Event") == "QueueParams":
            out[h["Queue"]] = h
    return out


def test_queues_conf_settings_are_what_asterisk_reports() -> None:
    conf = parse_conf(AST / "queues.conf", templates=True)
    assert {"general", "support", "sales"} <= set(conf)
    recorded = _queue_params()
    for queue in ("support", "sales"):
        keys = [k for k, _ in conf[queue]]
        assert len(keys) == len(set(keys)), f"{queue}: a setting given twice (template and queue): {keys}"
        eff = dict(conf[queue])
        rec = recorded[queue]
        assert eff["strategy"] == rec["Strategy"]
        assert (eff["maxlen"], eff["servicelevel"], eff["weight"]) == (rec["Max"], rec["ServiceLevel"], rec["Weight"])
    assert "strategy" not in dict(conf["qmon-defaults"])  # see the comment in queues.conf
    from monitor.settings import TrackerSettings

    assert float(dict(conf["support"])["servicelevel"]) == TrackerSettings().sl_threshold_s


def _budget_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("qmon_budget", AST / "budget.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _prompt_lines() -> list[list[str]]:
    return [ln.split("|") for ln in (AST / "sounds" / "prompts.txt").read_text().splitlines()
            if ln and not ln.startswith("#")]


def test_every_language_has_every_prompt_as_8khz_mono_wav() -> None:
    lines = _prompt_lines()
    assert {lg for lg, _, _ in lines} == set(LANGS)
    for lang in LANGS:
        names = {name for lg, name, _ in lines if lg == lang}
        assert names == set(DEFAULT_PROMPT_FILES.values())
        assert {p.stem for p in (AST / "sounds" / lang).glob("*.wav")} == names
        for name in names:
            with wave.open(str(AST / "sounds" / lang / f"{name}.wav")) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
                assert 0.5 < w.getnframes() / 8000 < 20  # a real, short prompt
    assert "espeak-ng" in (AST / "sounds" / "generate.sh").read_text()
    assert _defaults()["QMON_LANGS"].split("/") == list(LANGS)


def test_durations_file_matches_the_wav_files() -> None:
    durations = json.loads((AST / "sounds" / "durations.json").read_text())
    assert set(durations) == set(LANGS)
    for lang, files in durations.items():
        assert set(files) == set(DEFAULT_PROMPT_FILES.values())
        for name, seconds in files.items():
            with wave.open(str(AST / "sounds" / lang / f"{name}.wav")) as w:
                assert seconds == pytest.approx(w.getnframes() / w.getframerate(), abs=0.0006), (lang, name)
