"""Overlap a producer with its consumer: a generator run in a background thread feeding a
bounded queue, so that e.g. decoding and face masking (PyAV and MediaPipe release the GIL)
keep one core busy while the network (torch releases it too) uses the other.

Memory stays flat whatever the clip's length: at most `depth` items wait in the queue.
The consumer keeps torch's threads (one per core): with 2 cores, a single torch thread
beside the producer kept 1.2 cores busy and two kept 1.7 (the producer needs about a third
of a core), so the cores are shared rather than split.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar


T = TypeVar("T")
DEPTH = 16  # items waiting at most (masked crops: 389 KB each, about 6 MB)
_POLL_S = 0.1  # how often a blocked producer checks whether the consumer has gone
_DONE = object()


class _Failure:
    """The producer's exception, carried to the consumer and raised there."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterable[T], depth: int = DEPTH) -> Iterator[T]:
    """Yield `items` in order while a background thread produces them up to `depth` ahead.

    An exception in the producer is raised here, the same object (no hang). Closing this
    generator early stops the producer and closes `items` in its thread.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    worker = threading.Thread(target=_produce, args=(items, slots, stop),
                              name="gestsync-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        _drain(slots, worker)


def _produce(items: Iterable[T], slots: queue.Queue, stop: threading.Event) -> None:
    """Thread body: put every item (or the failure), then _DONE; give up once `stop` is set."""
    it = iter(items)
    try:
        for item in it:
            if not _put(slots, item, stop):
                return
        _put(slots, _DONE, stop)
    except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
        _put(slots, _Failure(error), stop)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()  # a generator's clean-up (decoder, face mesh) runs in the thread that used it


def _put(slots: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            slots.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _drain(slots: queue.Queue, worker: threading.Thread) -> None:
    """Empty the queue until the producer has ended, so it never blocks on a full queue."""
    while worker.is_alive():
        with contextlib.suppress(queue.Empty):
            slots.get(timeout=_POLL_S)
    worker.join()
