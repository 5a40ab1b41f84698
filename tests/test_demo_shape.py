"""The simulator's event streams look like the real Asterisk 22 transcripts, outcome by outcome."""

from __future__ import annotations

import pytest

from monitor.sim.scenario import Simulation, generate
from tests.support.demo_scripts import (
    MEMBERS,
    RACES,
    SCAFFOLDING,
    SCRIPTS,
    SUPPORT,
    T0,
    channel_signature,
    header_shapes,
    load_transcript,
    queue_channel,
    run_script,
    story,
)

ALL = sorted(p for p in SCRIPTS)


@pytest.mark.parametrize("name", ALL)
def test_queue_channel_events_match_transcript(name: str) -> None:
    real, sim = load_transcript(name), run_script(SCRIPTS[name], MEMBERS.get(name, SUPPORT))
    races = RACES.get(name, set())
    want = [x for x in channel_signature(real, queue_channel(real)) if x not in races]
    got = [x for x in channel_signature(sim, queue_channel(sim)) if x not in races]
    assert got == want


@pytest.mark.parametrize("name", ALL)
def test_call_story_matches_transcript(name: str) -> None:
    races = RACES.get(name, set())
    real, sim = load_transcript(name), run_script(SCRIPTS[name], MEMBERS.get(name, SUPPORT))
    assert [x for x in story(sim) if x not in races] == [x for x in story(real) if x not in races]


def _transcript_shapes() -> dict[str, set[frozenset[str]]]:
    shapes: dict[str, set[frozenset[str]]] = {}
    for name in [*ALL, "attended_transfer", "member_changes", "concurrent", "repeat_caller",
                           "pause_reasons"]:
        for e, s in header_shapes(load_transcript(name)).items():
            shapes.setdefault(e, set()).update(s)
    return shapes


def test_every_simulated_event_has_a_real_header_shape() -> None:
    """Over an hour of random traffic, every event type and header set also occurs in a real capture."""
    shapes = _transcript_shapes()
    events, _, _ = generate(7, T0, 3600)
    seen: dict[str, set[frozenset[str]]] = {}
    for _, h in events:
        seen.setdefault(h["Event"], set()).add(frozenset(h))
    for event, sets in seen.items():
        assert event in shapes, f"{event} never occurs in the transcripts"
        assert sets <= shapes[event], (event, [sorted(s ^ next(iter(shapes[event]))) for s in sets])
    assert not SCAFFOLDING & set(seen)


def test_ids_and_wire_details_look_real() -> None:
    events, _, _ = generate(3, T0, 600)
    uids = [h["Uniqueid"] for _, h in events if h["Event"] == "Newchannel"]
    seqs = [int(u.split(".")[1]) for u in uids]
    assert seqs == list(range(len(seqs)))  # <epoch>.<n>, numbered in wire order as Asterisk does
    assert all(int(u.split(".")[0]) >= int(T0) for u in uids)
    stamps = [float(h["Timestamp"]) for _, h in events]
    assert stamps == sorted(stamps)
    for _, h in events:
        if h["Event"] == "AgentRingNoAnswer":
            assert int(h["RingTime"]) >= 1000  # milliseconds
        if "Linkedid" in h and h["Event"] != "Newchannel":
            assert h["Linkedid"] in uids
    assert all(not k.startswith("_") for _, h in events for k in h)


def test_same_seed_same_stream() -> None:
    a, _, _ = generate(11, T0, 900)
    b, _, _ = generate(11, T0, 900)
    c, _, _ = generate(12, T0, 900)
    assert a == b and a != c


def test_same_stream_however_paced() -> None:
    """The live server advances in steps the wall clock decides: the stream must not depend on them."""
    whole = Simulation(11, T0).advance(T0 + 600)
    sim, stepped, t = Simulation(11, T0), [], T0
    while t < T0 + 600:
        t = min(t + 0.7, T0 + 600)
        stepped += sim.advance(t)
    assert stepped == whole
