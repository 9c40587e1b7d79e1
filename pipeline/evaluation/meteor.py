"""pycocoevalcap's METEOR: one JVM kept for a burst of evaluations, guarded against one that hangs,
dies or lingers.

``Meteor`` keeps a long-lived ``java -jar meteor-1.5.jar -stdio`` process and talks to it line by
line. Starting it costs about 10-15 s on 2 CPU cores (it loads a 59 MB paraphrase table), scoring
1,000 captions about 2 s, so one JVM serves every call of a burst (``compare`` evaluating four
runs, a notebook's evaluation cell, a test session) and is stopped once no call has come for
``IDLE_S`` seconds, or when the process exits. Used bare, three things go wrong:
- if the JVM dies (e.g. it cannot reserve its 2 GB heap) ``compute_score`` fails on an empty line
  while holding its lock, and ``Meteor.__del__`` then waits for that lock forever;
- if the JVM stalls, ``compute_score`` blocks forever on ``readline``;
- the process only ends when the garbage collector happens to run ``__del__``.
So each call runs in a worker thread with a deadline; a JVM that failed or missed its deadline is
killed, reaped and its lock freed before the error is raised, and the next call starts a new one.
"""

from __future__ import annotations

import atexit
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as DeadlineExceeded  # not the builtin before Python 3.11
from subprocess import Popen

from pycocoevalcap.meteor.meteor import Meteor

from pipeline.evaluation.java import JavaToolError, require_java, stderr_reason

_BASE_TIMEOUT_S = 120.0  # starting the JVM takes ~10-15 s; scoring ~2 ms per image
_TIMEOUT_S_PER_IMAGE = 0.05
IDLE_S = 60.0  # a JVM no call has used for this long is stopped (it reserves a 2 GB heap)


class _Server:
    """One running METEOR JVM and the thread its calls run in."""

    def __init__(self):
        try:
            self.meteor = Meteor()
        except OSError as exc:
            raise JavaToolError(f"METEOR could not start: {exc}") from None
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capcache-meteor")
        self.pid = os.getpid()  # a forked child inherits this object, not the right to use the JVM's pipes

    def alive(self) -> bool:
        return self.meteor.meteor_p.poll() is None

    def score(self, gts: dict[str, list[str]], res: dict[str, list[str]], timeout_s: float) -> tuple[float, list[float]]:
        try:
            return self.worker.submit(self.meteor.compute_score, gts, res).result(timeout=timeout_s)
        except DeadlineExceeded:
            raise JavaToolError(f"METEOR gave no answer within {timeout_s:.0f} s") from None
        except (OSError, ValueError):  # a broken pipe, or float("") read from a dead process
            raise JavaToolError(f"METEOR process failed: {_death_reason(self.meteor.meteor_p)}") from None

    def close(self) -> None:
        _shut_down(self.meteor, self.worker)


_lock = threading.Lock()  # one call at a time talks to the JVM
_server: _Server | None = None
_idle_timer: threading.Timer | None = None


def meteor_score(gts: dict[str, list[str]], res: dict[str, list[str]],
                 timeout_s: float | None = None) -> tuple[float, list[float]]:
    """``Meteor().compute_score(gts, res)``, or JavaToolError saying why there is no answer.
    ``timeout_s`` defaults to a deadline that grows with the number of images."""
    global _server
    require_java()
    if timeout_s is None:
        timeout_s = _BASE_TIMEOUT_S + _TIMEOUT_S_PER_IMAGE * len(res)
    with _lock:
        _cancel_idle_timer()
        if _server is not None and _server.pid != os.getpid():
            _server = None  # the parent's JVM: the parent stops it
        if _server is not None and not _server.alive():
            _close_server()
        if _server is None:
            _server = _Server()
        try:
            return _server.score(gts, res, timeout_s)
        except JavaToolError:
            _close_server()
            raise
        finally:
            _start_idle_timer()


def close_meteor() -> None:
    """Stop the kept JVM now, if there is one (also run at exit and after ``IDLE_S`` idle seconds)."""
    with _lock:
        _cancel_idle_timer()
        _close_server()


def _close_server() -> None:
    global _server
    if _server is not None:
        _server.close()
        _server = None


def _start_idle_timer() -> None:
    global _idle_timer
    if _server is not None:
        _idle_timer = threading.Timer(IDLE_S, _close_when_still_idle)
        _idle_timer.daemon = True
        _idle_timer.start()


def _close_when_still_idle() -> None:
    """The idle timer's action. A timer that fired while a call held the lock is stale by the time
    it gets the lock (the call started a new one): it must not stop the JVM that call just used."""
    global _idle_timer
    with _lock:
        if _idle_timer is threading.current_thread():
            _idle_timer = None
            _close_server()


def _cancel_idle_timer() -> None:
    global _idle_timer
    if _idle_timer is not None:
        _idle_timer.cancel()
        _idle_timer = None


atexit.register(close_meteor)


def _shut_down(meteor: Meteor, worker: ThreadPoolExecutor) -> None:
    """Killing the JVM first is what lets a worker blocked on its pipes finish; the lock a failed
    ``compute_score`` left taken is then released so that ``Meteor.__del__`` cannot hang on it."""
    process = meteor.meteor_p
    _stop(process)
    worker.shutdown(wait=True)
    if meteor.lock.locked():
        meteor.lock.release()
    for stream in (process.stdin, process.stdout, process.stderr):
        try:
            stream.close()
        except OSError:  # stdin still held bytes the dead process never read
            pass


def _death_reason(process: Popen) -> str:
    _stop(process)  # so that reading its stderr to the end cannot block
    return stderr_reason(process.stderr.read(), f"exit status {process.returncode}")


def _stop(process: Popen) -> None:
    process.kill()  # a no-op once the process has been reaped
    process.wait()
