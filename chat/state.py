"""Shared real-time state: presence, per-user throttles and offline queues.

With ``REDIS_URL`` set it lives in Redis, so every worker sees the same presence, counts
the same throttle windows and fills the same queues; without it, in this process's memory
(the embedded one-process default). Consumers call the async methods on the event loop;
the broadcast path, which runs in sync code after a commit, calls the sync ones.

Presence is a sorted set per user of connection id -> expiry time. Each open connection
refreshes its entry while it lives; a worker killed without closing its sockets leaves
entries that simply expire, so nobody stays online for longer than ``PRESENCE_TTL``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import defaultdict, deque

from django.conf import settings

PRESENCE_TTL = 45
PRESENCE_HEARTBEAT = 15
QUEUE_LIMIT = 100
QUEUE_TTL = 7 * 24 * 3600


class MemoryState:
    """One process's state, for the embedded default and single-worker tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._presence: dict[int, dict[str, float]] = defaultdict(dict)
        self._windows: dict[str, tuple[int, float]] = {}
        self._queues: dict[int, deque[str]] = defaultdict(lambda: deque(maxlen=QUEUE_LIMIT))

    def _live(self, user_id: int, now: float) -> dict[str, float]:
        entries = self._presence[user_id]
        for conn in [c for c, exp in entries.items() if exp <= now]:
            del entries[conn]
        return entries

    async def presence_connect(self, user_id: int, conn_id: str) -> bool:
        now = time.time()
        with self._lock:
            entries = self._live(user_id, now)
            was_offline = not entries
            entries[conn_id] = now + PRESENCE_TTL
        return was_offline

    async def presence_refresh(self, user_id: int, conn_id: str) -> None:
        with self._lock:
            self._presence[user_id][conn_id] = time.time() + PRESENCE_TTL

    async def presence_disconnect(self, user_id: int, conn_id: str) -> bool:
        with self._lock:
            entries = self._live(user_id, time.time())
            entries.pop(conn_id, None)
            return not entries

    def online(self, user_ids) -> set[int]:
        now = time.time()
        with self._lock:
            return {uid for uid in user_ids if self._live(uid, now)}

    async def throttle_hit(self, key: str, limit: int, window_ms: int) -> float | None:
        now = time.time()
        with self._lock:
            count, ends = self._windows.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window_ms / 1000
            count += 1
            self._windows[key] = (count, ends)
        return ends - now if count > limit else None

    def queue_push(self, user_ids, text: str) -> None:
        with self._lock:
            for uid in user_ids:
                self._queues[uid].append(text)

    async def queue_drain(self, user_id: int) -> list[str]:
        with self._lock:
            return list(self._queues.pop(user_id, ()))

    def reset(self) -> None:
        with self._lock:
            self._presence.clear()
            self._windows.clear()
            self._queues.clear()


class RedisState:
    """State shared by every worker through Redis."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self._url = url
        self._prefix = prefix
        self._sync = redis.Redis.from_url(url, max_connections=settings.REDIS_MAX_CONNECTIONS)
        # redis.asyncio clients are bound to the loop that made them.
        self._async_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _async(self):
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._async_by_loop.get(loop)
        if client is None:
            client = redis.asyncio.Redis.from_url(
                self._url, max_connections=settings.REDIS_MAX_CONNECTIONS
            )
            self._async_by_loop[loop] = client
        return client

    def _key(self, *parts) -> str:
        return ":".join((self._prefix, *map(str, parts)))

    async def presence_connect(self, user_id: int, conn_id: str) -> bool:
        key, now = self._key("presence", user_id), time.time()
        pipe = self._async().pipeline(transaction=True)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zcard(key)
        pipe.zadd(key, {conn_id: now + PRESENCE_TTL})
        pipe.expire(key, PRESENCE_TTL)
        _, before, _, _ = await pipe.execute()
        return before == 0

    async def presence_refresh(self, user_id: int, conn_id: str) -> None:
        key = self._key("presence", user_id)
        pipe = self._async().pipeline(transaction=True)
        pipe.zadd(key, {conn_id: time.time() + PRESENCE_TTL})
        pipe.expire(key, PRESENCE_TTL)
        await pipe.execute()

    async def presence_disconnect(self, user_id: int, conn_id: str) -> bool:
        key, now = self._key("presence", user_id), time.time()
        pipe = self._async().pipeline(transaction=True)
        pipe.zrem(key, conn_id)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zcard(key)
        *_, left = await pipe.execute()
        return left == 0

    def online(self, user_ids) -> set[int]:
        user_ids = list(user_ids)
        if not user_ids:
            return set()
        now = time.time()
        pipe = self._sync.pipeline(transaction=False)
        for uid in user_ids:
            pipe.zcount(self._key("presence", uid), now, "+inf")
        return {uid for uid, n in zip(user_ids, pipe.execute(), strict=True) if n}

    async def throttle_hit(self, key: str, limit: int, window_ms: int) -> float | None:
        full = self._key("throttle", key)
        pipe = self._async().pipeline(transaction=True)
        pipe.incr(full)
        pipe.pexpire(full, window_ms, nx=True)
        pipe.pttl(full)
        count, _, ttl = await pipe.execute()
        return max(ttl, 1) / 1000 if count > limit else None

    def queue_push(self, user_ids, text: str) -> None:
        pipe = self._sync.pipeline(transaction=False)
        for uid in user_ids:
            key = self._key("queue", uid)
            pipe.rpush(key, text)
            pipe.ltrim(key, -QUEUE_LIMIT, -1)
            pipe.expire(key, QUEUE_TTL)
        pipe.execute()

    async def queue_drain(self, user_id: int) -> list[str]:
        key = self._key("queue", user_id)
        pipe = self._async().pipeline(transaction=True)
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        items, _ = await pipe.execute()
        return [item.decode() for item in items]

    def reset(self) -> None:
        for key in self._sync.scan_iter(match=self._key("*"), count=1000):
            self._sync.delete(key)


_state: MemoryState | RedisState | None = None
_state_lock = threading.Lock()


def get_state() -> MemoryState | RedisState:
    """The process's state backend, chosen by ``REDIS_URL``."""
    global _state
    with _state_lock:
        if _state is None:
            if settings.REDIS_URL:
                _state = RedisState(settings.REDIS_URL, settings.REALTIME_PREFIX)
            else:
                _state = MemoryState()
        return _state
