"""Which device a queue member is, and which member a channel belongs to: keys that match a member's ``Interface``
(``PJSIP/1001``, a FreePBX ``Local/1001@from-queue/n``, a ``hint:1001@ctx`` state interface) with the name of a
channel of that device (``PJSIP/1001-0000002a``). Used by :class:`monitor.core.agents.AgentBoard`.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["channel_keys", "device_keys", "interface_keys"]

_CHAN_SUFFIX = re.compile(r"(-[0-9a-fA-F]{6,})?(;\d+)?$")  # a channel's unique suffix and a Local half's ;1/;2


def device_keys(interface: str) -> set[str]:
    """Keys identifying a member's device: ``PJSIP/1001`` -> {``pjsip/1001``, ``ext:1001``}; ``hint:1001@ctx`` too.

    A Local member (``Local/1001@from-queue/n``, FreePBX style) matches a phone channel of the same extension.
    """
    s = interface.strip()
    if not s:
        return set()
    if s.lower().startswith("hint:"):
        return {"ext:" + s[5:].split("@", 1)[0]}
    s = s.removesuffix("/n")
    _, _, resource = s.partition("/")
    keys = {s.lower()}
    if resource:
        keys.add("ext:" + resource.split("@", 1)[0].split("/", 1)[0])
    return keys


@lru_cache(maxsize=16_384)
def interface_keys(interface: str) -> tuple[str, ...]:
    """:func:`device_keys` of a member's interface, made once (every member event names its interfaces again, a
    few distinct ones per member). Bounded above the 10 006 members the bench measures (~0.3 kB an entry): below
    the member count, a round of member events evicts every entry before it is asked again."""
    return tuple(device_keys(interface))


def channel_keys(channel: str) -> set[str]:
    """Device keys of a channel name: ``PJSIP/1001-0000002a`` -> keys of ``PJSIP/1001`` (see :func:`device_keys`)."""
    return device_keys(_CHAN_SUFFIX.sub("", channel.strip()))
