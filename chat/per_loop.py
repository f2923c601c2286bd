"""One object per running event loop, made on first use.

Futures, tasks and timers belong to the loop that made them, and a process may run more than
one loop (a test client's, a worker's), so the gateway's batchers, writers and readers each
keep one instance per loop. Held weakly: a loop that is gone takes its instance with it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """Calling it gives the running loop's ``factory()`` object."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self.factory = factory
        self.by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __call__(self) -> T:
        loop = asyncio.get_running_loop()
        instance = self.by_loop.get(loop)
        if instance is None:
            instance = self.by_loop[loop] = self.factory()
        return instance
