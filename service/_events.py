"""``EventHub``: one store poll per watched study, fanned out to every listener."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tuner.exceptions import TunerError
from tuner.store import EventRecord, Store

__all__ = ["EventHub"]

logger = logging.getLogger(__name__)

_PAGE = 500


@dataclass
class _Feed:
    seq: int  # highest sequence number read by the poller
    floor: int  # the buffer holds every event of the study with floor < seq <= self.seq
    buffer: deque[EventRecord] = field(default_factory=deque)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    refs: int = 0
    task: asyncio.Task[None] | None = None


class EventHub:
    """Streams a study's events to many listeners while reading the store once per interval.

    A listener first catches up from the store on its own, then follows the study's shared
    feed, which one poller task fills while anyone listens. Events come from the store, so
    studies run by another process on the same store (the CLI) stream too. Use it from one
    event loop.

    Args:
        store: the study store.
        interval: seconds between polls of a watched study; the added latency is about half.
        buffer: events a feed keeps in memory for listeners that fall behind a little.
    """

    def __init__(self, store: Store, *, interval: float = 0.2, buffer: int = 2000) -> None:
        self.store = store
        self.interval = interval
        self.buffer = buffer
        self._feeds: dict[str, _Feed] = {}

    async def listen(self, study_id: str, after: int = 0, *,
                     idle: float = 15.0) -> AsyncIterator[EventRecord | None]:
        """Yield the study's events with ``seq > after``, oldest first, as they come; None
        after ``idle`` seconds without one (time for a keep-alive). Never ends by itself."""
        pos = after
        while True:  # catch up from the store
            batch = await asyncio.to_thread(self.store.events, study_id, pos, _PAGE)
            for event in batch:
                yield event
                pos = event.seq
            if len(batch) < _PAGE:
                break
        feed = self._acquire(study_id, pos)
        try:
            while True:
                if pos < feed.floor:  # fell behind the buffer: read the gap from the store
                    batch = await asyncio.to_thread(self.store.events, study_id, pos, _PAGE)
                    for event in batch:
                        yield event
                        pos = event.seq
                    if batch:
                        continue
                    pos = max(pos, feed.floor)
                fresh = [e for e in feed.buffer if e.seq > pos]
                if fresh:
                    for event in fresh:
                        yield event
                        pos = event.seq
                    continue
                changed = feed.changed
                try:
                    await asyncio.wait_for(changed.wait(), idle)
                except TimeoutError:
                    yield None
        finally:
            self._release(study_id, feed)

    def _acquire(self, study_id: str, pos: int) -> _Feed:
        feed = self._feeds.get(study_id)
        if feed is None:
            feed = self._feeds[study_id] = _Feed(seq=pos, floor=pos)
            feed.task = asyncio.get_running_loop().create_task(
                self._poll(study_id, feed), name=f"events-{study_id}")
        feed.refs += 1
        return feed

    def _release(self, study_id: str, feed: _Feed) -> None:
        feed.refs -= 1
        if feed.refs <= 0:
            if self._feeds.get(study_id) is feed:
                del self._feeds[study_id]
            if feed.task is not None:
                feed.task.cancel()

    async def _poll(self, study_id: str, feed: _Feed) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while feed.refs > 0:
                try:
                    batch = await asyncio.to_thread(self.store.events, study_id, feed.seq, _PAGE)
                except TunerError:  # a busy or vanished store: try again on the next tick
                    logger.warning("cannot read events of %s", study_id, exc_info=True)
                    batch = []
                if batch:
                    feed.buffer.extend(batch)
                    while len(feed.buffer) > self.buffer:
                        feed.floor = feed.buffer.popleft().seq
                    feed.seq = batch[-1].seq
                    changed, feed.changed = feed.changed, asyncio.Event()
                    changed.set()
                if len(batch) < _PAGE:
                    await asyncio.sleep(self.interval)
