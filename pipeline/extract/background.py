"""A writer thread, so the HDF5 write of batch k overlaps the forward pass of batch k+1."""

from __future__ import annotations

import queue
import threading
from typing import Callable

import numpy as np


class BackgroundWriter:
    def __init__(self, write: Callable[..., None], depth: int = 4):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)  # bounded: memory stays flat
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="capcache-cache-writer", daemon=True)
        self._thread.start()

    def put(self, *item: np.ndarray | None) -> None:
        """Queue one ``write(*item)`` call; blocks while ``depth`` are already waiting."""
        self._raise_if_failed()
        self._queue.put(item)

    def close(self) -> None:
        """Wait until everything queued is written; re-raise a write error (disk full, permission)."""
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(*item)
                except BaseException as e:  # handed to the main thread, which reports it
                    self._error = e

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
