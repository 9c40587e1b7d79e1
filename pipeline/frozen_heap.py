"""Keeping Python's garbage collector off the heap that exists before a hot loop starts.

By the time an extraction loop runs, the process holds hundreds of thousands of long-lived
objects (torch, the model, the manifest). A full collection walks every one of them: measured
0.18 s with the GIL held, once or more per extraction of a few hundred images, while the encoder
waits (2 cores, resnet50). A forked DataLoader worker inherits that heap and walks it again on
its first full collection (0.2 s of CPU per worker, in the seconds the encoder runs its first
batches), writing the collector's bookkeeping into every page it walks and so copying them from
the parent. ``gc.freeze()`` moves the existing objects into a permanent generation the collector
never visits; what is allocated afterwards is still collected. Extraction runs within
``frozen_heap``, so the workers it forks inherit the frozen heap; a loader forked from a process
that is not frozen (captioning new files) freezes in each worker (``freeze_inherited_heap``), as
the Python docs recommend for forked children. In a spawned worker (macOS, Windows) it is harmless.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


def freeze_inherited_heap(worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: the worker never collects what it inherited."""
    gc.freeze()


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Within the block the collector skips every object that existed when it began; on leaving,
    they are collectable again. A process that froze its heap itself, or turned the collector off,
    is left as it is."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
