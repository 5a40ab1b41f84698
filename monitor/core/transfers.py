"""Where a transfer went: naming targets without trusting AttendedTransfer's optional headers."""

from __future__ import annotations

import re
from collections import OrderedDict

_LOCAL = re.compile(r"^Local/([^;]+?)(?:-[0-9a-f]+)?(?:;[12])?$")
_TECH = re.compile(r"^([A-Za-z0-9_]+/[^-;]+)(?:-[0-9a-f]+)?(?:;[12])?$")


def describe_target(channel: str) -> str:
    """``Local/2002@lab-xfer-0000002;1`` -> ``2002@lab-xfer``; ``PJSIP/2002-0000001a`` -> ``PJSIP/2002``."""
    if not channel:
        return ""
    m = _LOCAL.match(channel)
    if m:
        return m.group(1)
    m = _TECH.match(channel)
    return m.group(1) if m else channel


class TransferTargets:
    """Remembers the consult leg of attended transfers (VarSet ATTENDEDTRANSFER=<transferer channel>).

    Asterisk sets that variable on the new target channel, so the target is known even when the
    AttendedTransfer event omits its TransferTarget* block (it does so about a third of the time).
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._by_transferer: OrderedDict[str, str] = OrderedDict()
        self._limit = limit

    def remember(self, transferer_channel: str, target_channel: str) -> None:
        """The channel ``target_channel`` is the consult leg of ``transferer_channel``."""
        if not transferer_channel or not target_channel:
            return
        # The first VarSet names the ;1 half (the leg that is bridged with the transferer).
        if transferer_channel not in self._by_transferer:
            self._by_transferer[transferer_channel] = target_channel
            while len(self._by_transferer) > self._limit:
                self._by_transferer.popitem(last=False)

    def pop(self, transferer_channel: str) -> str:
        """The target for this transferer, forgotten once used."""
        return self._by_transferer.pop(transferer_channel, "")
