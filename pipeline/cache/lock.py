"""The one-writer lock of a cache: a POSIX record lock (``fcntl.lockf``) on ``<cache>.h5.lock``.

A record lock belongs to the process that took it alone. A BSD ``flock`` is shared with every
forked child, so after ``kill -9`` an orphaned DataLoader worker kept the dead writer's lock for
half a minute and the re-run was told to wait for a process that no longer wrote. With a record
lock the re-run resumes at once. The holder writes its PID and command into the file, so a
refused writer (and ``cache ls``) can say who holds it.

POSIX locks are dropped when the process closes *any* descriptor of the file, so this process
never opens a lock file it holds a second time (``_HELD``); a second writer in the same process
is refused like one in another process.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import warnings
from pathlib import Path

from pipeline.errors import CapcacheError
from pipeline.io import process_alive

_HELD: dict[str, int] = {}  # absolute lock path -> descriptor holding the lock, in this process
_NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)


def lock_path(cache: Path) -> Path:
    return cache.with_suffix(cache.suffix + ".lock")


class WriteLock:
    """Hold the write lock of ``cache`` until ``release``; refused with the holder's PID and command."""

    def __init__(self, cache: Path):
        self.cache = Path(cache)
        self._key = os.path.abspath(lock_path(self.cache))
        if self._key in _HELD:
            raise busy(self.cache, (os.getpid(), _command(os.getpid())))
        self._fd = os.open(self._key, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in _NO_LOCKS:  # a file system without locks (some NFS and FUSE mounts): go on, unguarded
                warnings.warn(f"{self.cache.parent} does not support file locks; make sure no other extraction "
                              f"writes {self.cache.name}", stacklevel=3)
            else:
                who = _recorded_holder(self._fd)
                os.close(self._fd)
                if e.errno in (errno.EACCES, errno.EAGAIN):
                    raise busy(self.cache, who) from None
                raise
        else:
            record = f"{os.getpid()}\n{_command(os.getpid())}\n".encode()
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, record, 0)
        _HELD[self._key] = self._fd

    def release(self) -> None:
        if _HELD.pop(self._key, None) is not None:
            os.close(self._fd)


def holder(cache: Path) -> tuple[int, str] | None:
    """(PID, command) of the live process that last took the write lock of ``cache``; None if it is gone."""
    key = os.path.abspath(lock_path(Path(cache)))
    if key in _HELD:
        return os.getpid(), _command(os.getpid())
    try:
        fd = os.open(key, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _recorded_holder(fd)
    finally:
        os.close(fd)  # this process holds no lock on it (not in _HELD), so closing releases nothing


def busy(cache: Path, who: tuple[int, str] | None) -> CapcacheError:
    by = f" (PID {who[0]}: {who[1]})" if who else ""
    return CapcacheError(f"another process is writing {cache}{by}; wait for it to finish (or stop it) and run again")


def _recorded_holder(fd: int) -> tuple[int, str] | None:
    lines = os.pread(fd, 4096, 0).decode(errors="replace").splitlines()
    if not lines or not lines[0].isdigit() or not process_alive(int(lines[0])):
        return None
    pid = int(lines[0])
    return pid, _command(pid) or (lines[1] if len(lines) > 1 else "?")


def _command(pid: int) -> str:
    """The command line of a process (Linux /proc; this process's argv elsewhere)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return " ".join(sys.argv) if pid == os.getpid() else ""
