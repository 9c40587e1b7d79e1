"""pycocoevalcap's METEOR, guarded against a JVM that hangs, dies or lingers.

``Meteor`` keeps one long-lived ``java -jar meteor-1.5.jar -stdio`` process and talks to it line by
line. Used bare, three things go wrong:
- if the JVM dies (e.g. it cannot reserve its 2 GB heap) ``compute_score`` fails on an empty line
  while holding its lock, and ``Meteor.__del__`` then waits for that lock forever;
- if the JVM stalls, ``compute_score`` blocks forever on ``readline``;
- the process only ends when the garbage collector happens to run ``__del__``.
So the call runs in a worker thread with a deadline, and the JVM is always killed, reaped and its
lock freed before returning, whatever happened.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as DeadlineExceeded  # not the builtin before Python 3.11
from subprocess import Popen

from pycocoevalcap.meteor.meteor import Meteor

from pipeline.evaluation.java import JavaToolError, require_java, stderr_reason

# Measured here: ~10 s to start (it loads a 59 MB paraphrase table), then ~2 ms per image.
_BASE_TIMEOUT_S = 120.0
_TIMEOUT_S_PER_IMAGE = 0.05


def meteor_score(gts: dict[str, list[str]], res: dict[str, list[str]],
                 timeout_s: float | None = None) -> tuple[float, list[float]]:
    """``Meteor().compute_score(gts, res)``, or JavaToolError saying why there is no answer.
    ``timeout_s`` defaults to a deadline that grows with the number of images."""
    require_java()
    if timeout_s is None:
        timeout_s = _BASE_TIMEOUT_S + _TIMEOUT_S_PER_IMAGE * len(res)
    try:
        meteor = Meteor()
    except OSError as exc:
        raise JavaToolError(f"METEOR could not start: {exc}") from None
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capcache-meteor")
    try:
        return worker.submit(meteor.compute_score, gts, res).result(timeout=timeout_s)
    except DeadlineExceeded:
        raise JavaToolError(f"METEOR gave no answer within {timeout_s:.0f} s") from None
    except (OSError, ValueError):  # a broken pipe, or float("") read from a dead process
        raise JavaToolError(f"METEOR process failed: {_death_reason(meteor.meteor_p)}") from None
    finally:
        _shut_down(meteor, worker)


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
