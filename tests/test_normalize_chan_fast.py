"""The channel snapshot's fast path reads exactly what the careful path reads (plain values, lists, gaps)."""

from __future__ import annotations

import pytest

from monitor.core.normalize import _Missing, _Reader

BASE = {"Uniqueid": "1.1", "Linkedid": "1.0", "Channel": "PJSIP/a-1", "CallerIDNum": "555", "CallerIDName": "A",
        "Context": "q", "Exten": "s", "Language": "en"}


@pytest.mark.parametrize("headers", [
    BASE, {"Uniqueid": "1.1"}, {**BASE, "Linkedid": ""}, {**BASE, "Channel": ["PJSIP/a-1", "PJSIP/b-2"]},
    {**BASE, "Uniqueid": ["1.1", "1.2"]}, {**BASE, "Uniqueid": ""}, {"Channel": "x"}, {**BASE, "Uniqueid": []},
    {**BASE, "Context": []}, {"DestUniqueid": "2.2", "DestChannel": "PJSIP/b-2"},
])
@pytest.mark.parametrize("prefix", ["", "Dest"])
def test_fast_chan_equals_the_careful_one(headers: dict[str, str | list[str]], prefix: str) -> None:
    r = _Reader("Newexten", headers)
    try:
        want = r._chan(prefix)
    except _Missing as exc:
        with pytest.raises(_Missing) as got:
            r.chan(prefix)
        assert str(got.value) == str(exc)
        return
    assert r.chan(prefix) == want
