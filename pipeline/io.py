"""Atomic file writes: a crash or kill mid-write never leaves a half-written file behind.

Every artefact capcache writes (manifests, configs, vocabularies, metrics snapshots, checkpoints,
caches) goes through a temporary file in the same directory followed by ``os.replace``, which is
atomic on POSIX and Windows as long as source and target share a filesystem.

The temporary is named after the process writing it (``.<name>.<pid>.<random>.tmp``), so one left
behind by a killed process (a cache being created can be several GB) is recognised as an orphan
and removed by the next run, and can be listed meanwhile. It is created with mode 0666 less the
umask, as ``open()`` would, so a group-shared folder stays readable by the group.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _new_temporary(target: Path) -> Path:
    while True:
        tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the kernel applies the umask
            return tmp
        except FileExistsError:
            continue


@dataclass(frozen=True)
class Temporary:
    """A temporary file of ``atomic_path`` found in a folder, and the process that writes it."""
    path: Path
    target: str  # the name it will replace
    pid: int

    @property
    def owner_alive(self) -> bool:
        return process_alive(self.pid)


def temporaries(folder: str | os.PathLike) -> list[Temporary]:
    """The ``atomic_path`` temporaries in ``folder``, by name (none when it does not exist)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    found = [(name, _TEMPORARY.match(name)) for name in names]
    return [Temporary(Path(folder) / name, m["target"], int(m["pid"])) for name, m in found if m]


def remove_orphaned_temporaries(folder: str | os.PathLike) -> list[Temporary]:
    """Delete the temporaries in ``folder`` whose writing process is gone; return what was removed."""
    removed = []
    for tmp in temporaries(folder):
        if not tmp.owner_alive:
            try:
                tmp.path.unlink()
                removed.append(tmp)
            except OSError:  # gone already, or not ours to delete: left for `cache ls` to show
                continue
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (this one included)."""
    if pid <= 0:  # 0 and negative ids name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_lines(path: str | os.PathLike, lines: Iterable[str]) -> Path:
    """Write ``lines`` (each without its newline) as they come, so a generator of millions never
    sits in memory at once; a failure part-way, an exception from the generator included, leaves
    ``path`` as it was."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
