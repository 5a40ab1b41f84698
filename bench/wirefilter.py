"""What reaches qmon on the wire, per second of real PBX time, with and without the AMI user's limits.

    python bench/wirefilter.py

Over every recorded capture (taken with ``read = all`` and no filter): bytes/s and events/s as captured,
then keeping only the events the ``read =`` classes of ``asterisk/manager.conf`` allow (the event's
``Privilege`` category), then also only those the generated ``eventfilter`` lines pass (Asterisk's legacy
semantics, :func:`monitor.ami.eventfilter.passes`). Seconds are each capture's first-to-last ``Timestamp``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stream import ROOT, capture_body, captures
from monitor.ami.eventfilter import filter_lines, passes, to_python

_STAMP = re.compile(rb"\r\nTimestamp: ([0-9.]+)\r\n")


@dataclass
class Wire:
    """Bytes and events that would be sent, and the PBX seconds they span."""

    bytes: int = 0
    events: int = 0

    def rate(self, seconds: float) -> tuple[float, float]:
        """(bytes/s, events/s)."""
        return self.bytes / seconds, self.events / seconds


def read_classes(conf: Path = ROOT / "asterisk" / "manager.conf") -> set[str]:
    """The ``read =`` classes of the [qmon] user."""
    section = ""
    for line in conf.read_text().splitlines():
        line = line.split(";", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "qmon" and line.replace(" ", "").startswith("read="):
            return {c.strip() for c in line.split("=", 1)[1].split(",")}
    raise SystemExit(f"{conf}: no read = line in [qmon]")


def measure() -> tuple[float, dict[str, Wire]]:
    """(PBX seconds, {"captured" | "read classes" | "read + eventfilter": Wire})."""
    patterns = [to_python(p) for p in filter_lines()]
    classes = read_classes()
    out = {k: Wire() for k in ("captured", "read classes", "read + eventfilter")}
    seconds = 0.0
    for path in captures():
        body = capture_body(path)
        stamps = [float(s) for s in _STAMP.findall(body)]
        seconds += max(stamps) - min(stamps)
        for raw in body.split(b"\r\n\r\n"):
            if not raw.startswith(b"Event: "):
                continue  # responses: always sent, the same with or without limits
            size = len(raw) + 4
            out["captured"].bytes += size
            out["captured"].events += 1
            m = re.search(rb"\r\nPrivilege: ([^\r]*)", raw)
            category = set(m.group(1).decode().split(",")) - {"all"} if m else set()
            if not category & classes:
                continue
            out["read classes"].bytes += size
            out["read classes"].events += 1
            if passes(patterns, raw.decode("utf-8", "replace") + "\r\n"):
                out["read + eventfilter"].bytes += size
                out["read + eventfilter"].events += 1
    return seconds, out


def main() -> None:
    """Print the table."""
    seconds, out = measure()
    base = out["captured"]
    print(f"{len(captures())} captures, {seconds:.0f} s of PBX time")
    print(f"{'on the wire':<20} {'bytes/s':>10} {'events/s':>9} {'bytes':>6} {'events':>7}")
    for name, w in out.items():
        bps, eps = w.rate(seconds)
        print(f"{name:<20} {bps:>10,.0f} {eps:>9.1f} {w.bytes / base.bytes:>6.0%} {w.events / base.events:>7.0%}")


if __name__ == "__main__":
    main()
