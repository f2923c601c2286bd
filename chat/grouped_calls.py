"""Calls of one event loop served in groups: whatever arrives while a group is being served
waits and goes out with the next one (group commit).

A frame's Redis round trip or database transaction costs the worker about as much for one
item as for a hundred: the client packs and parses one command or statement, the loop wakes
once. Serving items one at a time makes that cost grow with the frame rate; grouping them
makes it grow with the number of groups, which stays small under load. There is no fixed
delay: an item that arrives alone is served at once.

``GroupedCalls(serve)`` calls ``serve(items)`` (a coroutine function) with a list of items and
expects a result per item, in order; a result that is an exception is raised to that item's
caller alone, an exception raised by ``serve`` to every caller of the group. One instance per
event loop (its futures belong to that loop).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any


class GroupedCalls:
    """Items waiting to be served, and the task serving them while there are any."""

    def __init__(
        self, serve: Callable[[list[Any]], Awaitable[list[Any]]], *, group_max: int = 500
    ) -> None:
        self.serve = serve
        self.group_max = group_max
        self.waiting: deque[tuple[Any, asyncio.Future]] = deque()
        self.task: asyncio.Task | None = None

    def submit(self, item) -> asyncio.Future:
        """The future of ``item``'s result, served with the next group."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self.waiting.append((item, done))
        if self.task is None:
            self.task = loop.create_task(self._drain())
        return done

    async def _drain(self) -> None:
        group: list[tuple[Any, asyncio.Future]] = []
        try:
            while self.waiting:
                count = min(self.group_max, len(self.waiting))
                group = [self.waiting.popleft() for _ in range(count)]
                try:
                    results = await self.serve([item for item, _ in group])
                except Exception as exc:
                    results = [exc] * len(group)
                for (_, done), result in zip(group, results, strict=True):
                    _settle(done, result)
                group = []
        finally:
            self.task = None
            # Cancelled with the loop: nobody may wait forever on a call that won't happen.
            for _, done in [*group, *self.waiting]:
                done.cancel()
            self.waiting.clear()


def _settle(done: asyncio.Future, result) -> None:
    if done.done():  # the caller went away; its item was served all the same
        return
    if isinstance(result, BaseException):
        done.set_exception(result)
    else:
        done.set_result(result)
