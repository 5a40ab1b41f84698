"""Files and directories that hold caller numbers: created owner-only (0600 / 0700) whatever the umask."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("qmon.store")

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | os.PathLike[str]) -> None:
    """Create ``path`` and its missing parents as 0700 directories (existing ones are left as they are)."""
    p = Path(path)
    missing: list[Path] = []
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)  # mkdir's mode is masked by the umask; this is not


def private_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty with mode 0600 if it does not exist (True if created); warn if it is readable by others.

    Raises OSError when it cannot be created.
    """
    p = Path(path)
    private_dir(p.parent)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        _warn_if_open(p)
        return False
    try:
        os.fchmod(fd, FILE_MODE)  # exactly 0600 whatever the umask
    finally:
        os.close(fd)
    return True


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """``os.open(path, flags | O_CREAT)`` creating a missing file 0600 (parents 0700); returns the fd."""
    private_file(path)
    return os.open(path, flags | os.O_CREAT, FILE_MODE)


_warned: set[str] = set()


def _warn_if_open(p: Path) -> None:
    try:
        mode = p.stat().st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) and mode & 0o077 and str(p) not in _warned:
        _warned.add(str(p))
        log.warning("%s is readable by group/others (mode %o) and holds caller numbers: chmod 600 it",
                    p, stat.S_IMODE(mode))
