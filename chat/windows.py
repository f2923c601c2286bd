"""Fixed-window counting in one process's memory: the embedded default's throttles, and the
limits that belong to one connection (a connection lives on one worker, so those need no
shared state and end with it)."""

from __future__ import annotations

import time


class FixedWindows:
    """Counts per key: at most ``limit`` hits per ``window_ms``, the window starting at the
    first hit. Not thread-safe on its own: a caller shared between threads holds a lock."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, float]] = {}

    def hit(self, key: str, limit: int, window_ms: int) -> float | None:
        """Count one hit; None while within the limit, else the seconds until the window ends."""
        now = time.time()
        count, ends = self._windows.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + window_ms / 1000
        count += 1
        self._windows[key] = (count, ends)
        return ends - now if count > limit else None

    def clear(self) -> None:
        self._windows.clear()
