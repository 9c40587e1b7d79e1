"""Requests that arrive together are decoded together: one worker thread per served run.

The event loop hands each image to ``submit`` and awaits the future; the worker takes the first
waiting item, then whatever else arrives within ``wait_s`` (up to ``max_batch``), and runs the
batch through the model in one call. Decoding therefore never blocks the event loop, and eight
clients uploading at once cost about one batched forward instead of eight.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(self, work: Callable[[list[T]], list[R]], max_batch: int = 16, wait_s: float = 0.01,
                 name: str = "batcher"):
        self.work, self.max_batch, self.wait_s = work, max_batch, wait_s
        self.queue: queue.Queue[tuple[T, Future] | None] = queue.Queue()
        self.items = self.batches = 0  # served so far: images, and the batches they went in (GET /runs)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, item: T) -> Future:
        future: Future = Future()
        self.queue.put((item, future))
        return future

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            pending = [first]
            deadline = time.monotonic() + self.wait_s
            while len(pending) < self.max_batch:
                try:
                    nxt = self.queue.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)  # stop after this batch
                    break
                pending.append(nxt)
            self._run_batch(pending)

    def _run_batch(self, pending: list[tuple[T, Future]]) -> None:
        self.items, self.batches = self.items + len(pending), self.batches + 1
        try:
            results = self.work([item for item, _ in pending])
        except Exception as e:  # the model failed: every waiting request gets the error, the server stays up
            for _, future in pending:
                future.set_exception(e)
            return
        for (_, future), result in zip(pending, results):
            future.set_result(result)
