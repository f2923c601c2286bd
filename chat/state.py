"""Shared real-time state: presence, per-user throttles, offline queues, and running LLM
streams (concurrency slots, text so far for clients joining mid-stream, stop requests).

With ``REDIS_URL`` set it lives in Redis, so every worker sees the same presence, counts
the same throttle windows and fills the same queues; without it, in this process's memory
(the embedded one-process default). Consumers and the broadcaster call the async methods
on the event loop; the few sync ones serve page views and sweeps.

Presence is a sorted set per user of connection id -> expiry time. A worker refreshes the
entries of all its open connections together every ``PRESENCE_HEARTBEAT`` (``chat.timers``);
a worker killed without closing its sockets leaves entries that simply expire, so nobody
stays online for longer than ``PRESENCE_TTL``.

Redis connections come from a bounded pool per process and event loop that makes a caller
wait for a free connection (``REDIS_POOL_TIMEOUT``) rather than fail at once when all are
busy: bursts (every client of a worker dropping at once) queue instead of erroring.

While Redis is unreachable (restarting, failing over) the gateway keeps working on what
does not need it: presence reads as offline and is not announced, the offline queue is
neither drained nor lost (it stays in Redis), and throttles count in this process's memory
instead, so the limits still hold per worker. Durable events never depend on Redis: they
are in the database and replayed by seq. Nothing here raises for an outage except
``queue_for_offline`` (its caller logs it) and the LLM stream bookkeeping (the LLM app
decides).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import weakref
from collections import defaultdict, deque

import orjson
from django.conf import settings

logger = logging.getLogger(__name__)

PRESENCE_TTL = 45
PRESENCE_HEARTBEAT = 15
# Users per pipeline when refreshing presence: a beat sends a few pipelines of this many
# users (two commands each) rather than one huge one that would hold the loop while it is
# encoded and its replies parsed.
PRESENCE_BATCH = 500
QUEUE_LIMIT = 100
QUEUE_TTL = 7 * 24 * 3600
# A stream's live record outlives its slot by this long (seconds): a worker killed mid-answer
# leaves its text so far for the sweeper (``llm.services.stream_sweeper``) to save.
STREAM_RECORD_LINGER = 3600


class MemoryStreams:
    """One process's LLM stream bookkeeping (see ``MemoryState.stream_*``)."""

    def __init__(self) -> None:
        self.slots: dict[str, float] = {}
        self.records: dict[str, dict] = {}
        self.by_session: dict[str, set[str]] = defaultdict(set)
        self.stops: dict[str, tuple[dict, float]] = {}


class MemoryState:
    """One process's state, for the embedded default and single-worker tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._presence: dict[int, dict[str, float]] = defaultdict(dict)
        self._windows: dict[str, tuple[int, float]] = {}
        self._queues: dict[int, deque[str]] = defaultdict(lambda: deque(maxlen=QUEUE_LIMIT))
        self._stream_store = MemoryStreams()

    def _live(self, user_id: int, now: float) -> dict[str, float]:
        entries = self._presence[user_id]
        for conn in [c for c, exp in entries.items() if exp <= now]:
            del entries[conn]
        return entries

    async def connection_open(self, user_id: int, conn_id: str) -> tuple[bool, list[str]]:
        now = time.time()
        with self._lock:
            entries = self._live(user_id, now)
            was_offline = not entries
            entries[conn_id] = now + PRESENCE_TTL
            queued = list(self._queues.pop(user_id, ()))
        return was_offline, queued

    async def presence_refresh_many(self, entries) -> None:
        expires = time.time() + PRESENCE_TTL
        with self._lock:
            for user_id, conn_id in entries:
                self._presence[user_id][conn_id] = expires

    async def presence_remove_many(self, entries) -> None:
        with self._lock:
            for user_id, conn_id in entries:
                self._presence[user_id].pop(conn_id, None)

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

    async def queue_for_offline(self, user_ids, text: str) -> None:
        now = time.time()
        with self._lock:
            for uid in user_ids:
                if not self._live(uid, now):
                    self._queues[uid].append(text)

    # --- LLM streams: concurrency slots, live text for resume, stop requests ---------------
    #
    # A running stream holds a slot (stream id -> expiry) that it keeps alive; a worker that
    # dies without releasing leaves a slot that expires. Its text so far is kept as the list
    # of chunk deltas (index = position) with a small ``meta`` dict, so a client joining
    # mid-stream gets exactly the chunks before the next one it will receive.

    def _streams(self) -> MemoryStreams:
        return self._stream_store

    async def stream_slot_acquire(self, stream_id: str, *, limit: int, ttl: float) -> bool:
        """Take one of ``limit`` slots for ``stream_id``; False if all are taken."""
        streams, now = self._streams(), time.time()
        with self._lock:
            for sid in [sid for sid, exp in streams.slots.items() if exp <= now]:
                del streams.slots[sid]
            if stream_id not in streams.slots and len(streams.slots) >= limit:
                return False
            streams.slots[stream_id] = now + ttl
            return True

    async def stream_keepalive(self, stream_id: str, *, ttl: float, session_id=None) -> None:
        """Extend a running stream's slot (and, in Redis, its live record) by ``ttl``; a slot
        the state lost (Redis restarted) is taken again, or the stream would look dead."""
        streams = self._streams()
        with self._lock:
            streams.slots[stream_id] = time.time() + ttl

    async def stream_slot_release(self, stream_id: str) -> None:
        streams = self._streams()
        with self._lock:
            streams.slots.pop(stream_id, None)

    def stream_running(self, stream_id: str) -> bool:
        """Whether a worker holds the stream's slot: it is kept alive while the stream runs,
        so a stream whose slot has expired lost its worker."""
        streams = self._streams()
        with self._lock:
            return streams.slots.get(stream_id, 0.0) > time.time()

    async def stream_publish(
        self, session_id, stream_id: str, *, meta: dict, delta: str | None = None, ttl: float
    ) -> None:
        """Store a running stream's ``meta`` and append ``delta`` (a chunk) to its text."""
        streams = self._streams()
        with self._lock:
            record = streams.records.setdefault(stream_id, {"meta": {}, "deltas": []})
            record["meta"] = dict(meta)
            if delta is not None:
                record["deltas"].append(delta)
            streams.by_session[str(session_id)].add(stream_id)

    async def stream_forget(self, session_id, stream_id: str) -> None:
        """The stream ended: drop its live record."""
        streams = self._streams()
        with self._lock:
            streams.records.pop(stream_id, None)
            streams.by_session[str(session_id)].discard(stream_id)

    def stream_snapshot(self, stream_id: str) -> dict | None:
        """``{**meta, "deltas": [...]}`` of a running stream, or None."""
        streams = self._streams()
        with self._lock:
            record = streams.records.get(stream_id)
            return None if record is None else {**record["meta"], "deltas": list(record["deltas"])}

    def stream_snapshots(self, session_id) -> list[dict]:
        """The snapshots of every running stream of a session."""
        streams = self._streams()
        with self._lock:
            ids = sorted(streams.by_session.get(str(session_id), ()))
        found = [self.stream_snapshot(sid) for sid in ids]
        return [snapshot for snapshot in found if snapshot is not None]

    async def stream_stop_request(self, stream_id: str, payload: dict, *, ttl: float) -> None:
        """Ask whichever worker runs ``stream_id`` to stop it (``stream_stop_requested``)."""
        streams = self._streams()
        with self._lock:
            streams.stops[stream_id] = (dict(payload), time.time() + ttl)

    async def stream_stop_requested(self, stream_id: str) -> dict | None:
        streams = self._streams()
        with self._lock:
            payload, expires = streams.stops.get(stream_id, (None, 0.0))
            return payload if expires > time.time() else None

    def streams_reset(self) -> None:
        with self._lock:
            self._stream_store = MemoryStreams()

    def reset(self) -> None:
        with self._lock:
            self._presence.clear()
            self._windows.clear()
            self._queues.clear()
            self._stream_store = MemoryStreams()


def _record_ttl(ttl: float) -> int:
    """Seconds a live record is kept: its slot's ``ttl`` plus ``STREAM_RECORD_LINGER``."""
    return math.ceil(ttl) + STREAM_RECORD_LINGER


def _outage(what: str, exc: Exception) -> None:
    logger.warning("Redis unavailable (%s): %s: %s", what, type(exc).__name__, exc)


def _by_user(entries) -> dict[int, list[str]]:
    """(user id, connection id) pairs grouped by user."""
    grouped: dict[int, list[str]] = defaultdict(list)
    for user_id, conn_id in entries:
        grouped[user_id].append(conn_id)
    return grouped


class RedisState:
    """State shared by every worker through Redis."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self._url = url
        self._prefix = prefix
        self._sync = redis.Redis.from_pool(
            redis.BlockingConnectionPool.from_url(url, **self._pool_options())
        )
        # redis.asyncio clients are bound to the loop that made them.
        self._async_by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # Where throttles count while Redis is unreachable.
        self._local = MemoryState()
        self._errors = (redis.RedisError, OSError)

    @staticmethod
    def _pool_options() -> dict:
        return {
            "max_connections": settings.REDIS_MAX_CONNECTIONS,
            "timeout": settings.REDIS_POOL_TIMEOUT,
        }

    def _async(self):
        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._async_by_loop.get(loop)
        if client is None:
            pool = redis.asyncio.BlockingConnectionPool.from_url(self._url, **self._pool_options())
            client = self._async_by_loop[loop] = redis.asyncio.Redis.from_pool(pool)
        return client

    def _key(self, *parts) -> str:
        return ":".join((self._prefix, *map(str, parts)))

    async def connection_open(self, user_id: int, conn_id: str) -> tuple[bool, list[str]]:
        """Add the connection's presence entry and take the user's queued frames, in one
        round trip: whether the user was offline before, and the frames (now cleared). In an
        outage (False, []): nothing is announced, the heartbeat adds the entry once Redis is
        back, and the frames stay queued."""
        key, queue, now = self._key("presence", user_id), self._key("queue", user_id), time.time()
        pipe = self._async().pipeline(transaction=True)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zcard(key)
        pipe.zadd(key, {conn_id: now + PRESENCE_TTL})
        pipe.expire(key, PRESENCE_TTL)
        pipe.lrange(queue, 0, -1)
        pipe.delete(queue)
        try:
            _, before, _, _, items, _ = await pipe.execute()
        except self._errors as exc:
            _outage("presence and offline queue", exc)
            return False, []
        return before == 0, [item.decode() for item in items]

    async def presence_refresh_many(self, entries) -> None:
        """Push back the expiry of each (user id, connection id) entry: per user one ZADD of
        all its connections and one EXPIRE, ``PRESENCE_BATCH`` users per pipeline."""
        expires = time.time() + PRESENCE_TTL
        by_user = _by_user(entries)
        users = list(by_user)
        for start in range(0, len(users), PRESENCE_BATCH):
            pipe = self._async().pipeline(transaction=False)
            for user_id in users[start : start + PRESENCE_BATCH]:
                key = self._key("presence", user_id)
                pipe.zadd(key, dict.fromkeys(by_user[user_id], expires))
                pipe.expire(key, PRESENCE_TTL)
            try:
                await pipe.execute()
            except self._errors as exc:
                _outage("presence", exc)
                return

    async def presence_remove_many(self, entries) -> None:
        """Remove each (user id, connection id) entry, announcing nothing."""
        pipe = self._async().pipeline(transaction=False)
        for user_id, conn_ids in _by_user(entries).items():
            pipe.zrem(self._key("presence", user_id), *conn_ids)
        try:
            await pipe.execute()
        except self._errors as exc:
            _outage("presence", exc)

    async def presence_disconnect(self, user_id: int, conn_id: str) -> bool:
        """Whether that was the user's last connection; False in an outage (the entry
        expires on its own)."""
        key, now = self._key("presence", user_id), time.time()
        pipe = self._async().pipeline(transaction=True)
        pipe.zrem(key, conn_id)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zcard(key)
        try:
            *_, left = await pipe.execute()
        except self._errors as exc:
            _outage("presence", exc)
            return False
        return left == 0

    def online(self, user_ids) -> set[int]:
        """The users with an open connection; nobody, while Redis can't be read."""
        user_ids = list(user_ids)
        if not user_ids:
            return set()
        now = time.time()
        pipe = self._sync.pipeline(transaction=False)
        for uid in user_ids:
            pipe.zcount(self._key("presence", uid), now, "+inf")
        try:
            counts = pipe.execute()
        except self._errors as exc:
            _outage("presence", exc)
            return set()
        return {uid for uid, n in zip(user_ids, counts, strict=True) if n}

    async def throttle_hit(self, key: str, limit: int, window_ms: int) -> float | None:
        full = self._key("throttle", key)
        pipe = self._async().pipeline(transaction=True)
        pipe.incr(full)
        pipe.pexpire(full, window_ms, nx=True)
        pipe.pttl(full)
        try:
            count, _, ttl = await pipe.execute()
        except self._errors as exc:
            _outage("throttles count per worker meanwhile", exc)
            return await self._local.throttle_hit(key, limit, window_ms)
        return max(ttl, 1) / 1000 if count > limit else None

    # KEYS: n presence keys, then the same users' n queue keys. ARGV: now, the frame, the
    # queue limit, the queue TTL. Checking presence and pushing in one script means one
    # round trip per frame whatever the room's size, and no user turns online between the
    # check and the push.
    _QUEUE_FOR_OFFLINE = """
    local n = #KEYS / 2
    for i = 1, n do
        if redis.call('ZCOUNT', KEYS[i], ARGV[1], '+inf') == 0 then
            redis.call('RPUSH', KEYS[n + i], ARGV[2])
            redis.call('LTRIM', KEYS[n + i], -tonumber(ARGV[3]), -1)
            redis.call('EXPIRE', KEYS[n + i], ARGV[4])
        end
    end
    return 0
    """

    async def queue_for_offline(self, user_ids, text: str) -> None:
        user_ids = list(user_ids)
        if not user_ids:
            return
        keys = [self._key("presence", uid) for uid in user_ids]
        keys += [self._key("queue", uid) for uid in user_ids]
        await self._async().eval(
            self._QUEUE_FOR_OFFLINE, len(keys), *keys, time.time(), text, QUEUE_LIMIT, QUEUE_TTL
        )

    # --- LLM streams (see MemoryState): one sorted set of slots for every worker ----------

    # Drop expired slots, then take one if fewer than the limit are held: atomic in Redis,
    # so two workers can't both take the last slot.
    _SLOT_ACQUIRE = """
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
    if not redis.call('ZSCORE', KEYS[1], ARGV[3]) and
       redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
        return 0
    end
    redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
    return 1
    """

    def _stream_keys(self, stream_id: str) -> tuple[str, str]:
        return self._key("stream", stream_id, "meta"), self._key("stream", stream_id, "deltas")

    async def stream_slot_acquire(self, stream_id: str, *, limit: int, ttl: float) -> bool:
        now = time.time()
        taken = await self._async().eval(
            self._SLOT_ACQUIRE, 1, self._key("stream-slots"), now, limit, stream_id, now + ttl
        )
        return bool(taken)

    async def stream_keepalive(self, stream_id: str, *, ttl: float, session_id=None) -> None:
        meta, deltas = self._stream_keys(stream_id)
        pipe = self._async().pipeline(transaction=False)
        pipe.zadd(self._key("stream-slots"), {stream_id: time.time() + ttl})
        pipe.expire(meta, _record_ttl(ttl))
        pipe.expire(deltas, _record_ttl(ttl))
        if session_id is not None:
            pipe.expire(self._key("session-streams", session_id), _record_ttl(ttl))
        await pipe.execute()

    async def stream_slot_release(self, stream_id: str) -> None:
        await self._async().zrem(self._key("stream-slots"), stream_id)

    def stream_running(self, stream_id: str) -> bool:
        expires = self._sync.zscore(self._key("stream-slots"), stream_id)
        return expires is not None and expires > time.time()

    async def stream_publish(
        self, session_id, stream_id: str, *, meta: dict, delta: str | None = None, ttl: float
    ) -> None:
        meta_key, deltas_key = self._stream_keys(stream_id)
        session_key = self._key("session-streams", session_id)
        # One transaction: a reader sees the delta and the meta that counts it, or neither.
        pipe = self._async().pipeline(transaction=True)
        pipe.set(meta_key, orjson.dumps(meta), ex=_record_ttl(ttl))
        if delta is not None:
            pipe.rpush(deltas_key, delta)
            pipe.expire(deltas_key, _record_ttl(ttl))
        pipe.sadd(session_key, stream_id)
        pipe.expire(session_key, _record_ttl(ttl))
        await pipe.execute()

    async def stream_forget(self, session_id, stream_id: str) -> None:
        pipe = self._async().pipeline(transaction=True)
        pipe.delete(*self._stream_keys(stream_id))
        pipe.srem(self._key("session-streams", session_id), stream_id)
        await pipe.execute()

    def stream_snapshot(self, stream_id: str) -> dict | None:
        meta_key, deltas_key = self._stream_keys(stream_id)
        pipe = self._sync.pipeline(transaction=True)
        pipe.get(meta_key)
        pipe.lrange(deltas_key, 0, -1)
        meta, deltas = pipe.execute()
        if meta is None:
            return None
        return {**orjson.loads(meta), "deltas": [delta.decode() for delta in deltas]}

    def stream_snapshots(self, session_id) -> list[dict]:
        session_key = self._key("session-streams", session_id)
        found = []
        for raw in sorted(self._sync.smembers(session_key)):
            stream_id = raw.decode()
            snapshot = self.stream_snapshot(stream_id)
            if snapshot is None:
                # Its worker died and the record expired: forget it here too.
                self._sync.srem(session_key, stream_id)
            else:
                found.append(snapshot)
        return found

    async def stream_stop_request(self, stream_id: str, payload: dict, *, ttl: float) -> None:
        key = self._key("stream", stream_id, "stop")
        await self._async().set(key, orjson.dumps(payload), ex=math.ceil(ttl))

    async def stream_stop_requested(self, stream_id: str) -> dict | None:
        raw = await self._async().get(self._key("stream", stream_id, "stop"))
        return None if raw is None else orjson.loads(raw)

    def streams_reset(self) -> None:
        """Nothing of its own: ``reset`` drops every key of this state."""

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
