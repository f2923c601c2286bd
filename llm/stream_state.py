"""Running LLM streams' shared state: concurrency slots, the text so far for clients joining
mid-stream, and stop requests.

With ``REDIS_URL`` set it lives in Redis, on the chat state's connections
(``chat.state.shared_redis``) and under the same key prefix, so every worker sees the same
slots, records and stop requests; without it, in this process's memory (the embedded
one-process default).

A running stream holds a slot (stream id -> expiry) that it keeps alive; a worker that dies
without releasing leaves a slot that expires. Its text so far is kept as the list of chunk
deltas (index = position) with a small ``meta`` dict, so a client joining mid-stream gets
exactly the chunks before the next one it will receive. Unlike ``chat.state``, nothing here
hides a Redis outage: the LLM app's callers decide what a failure means for a stream.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict

import orjson

from chat.state import RedisClients, shared_redis

# A stream's live record outlives its slot by this long (seconds): a worker killed mid-answer
# leaves its text so far for the sweeper (``llm.services.stream_sweeper``) to save.
STREAM_RECORD_LINGER = 3600


def _record_ttl(ttl: float) -> int:
    """Seconds a live record is kept: its slot's ``ttl`` plus ``STREAM_RECORD_LINGER``."""
    return math.ceil(ttl) + STREAM_RECORD_LINGER


class MemoryStreamState:
    """One process's streams, for the embedded default and single-worker tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, float] = {}
        self._records: dict[str, dict] = {}
        self._by_session: dict[str, set[str]] = defaultdict(set)
        self._stops: dict[str, tuple[dict, float]] = {}

    async def stream_slot_acquire(self, stream_id: str, *, limit: int, ttl: float) -> bool:
        """Take one of ``limit`` slots for ``stream_id``; False if all are taken."""
        now = time.time()
        with self._lock:
            for sid in [sid for sid, exp in self._slots.items() if exp <= now]:
                del self._slots[sid]
            if stream_id not in self._slots and len(self._slots) >= limit:
                return False
            self._slots[stream_id] = now + ttl
            return True

    async def stream_keepalive(self, stream_id: str, *, ttl: float, session_id=None) -> None:
        """Extend a running stream's slot (and, in Redis, its live record) by ``ttl``; a slot
        the state lost (Redis restarted) is taken again, or the stream would look dead."""
        with self._lock:
            self._slots[stream_id] = time.time() + ttl

    async def stream_slot_release(self, stream_id: str) -> None:
        with self._lock:
            self._slots.pop(stream_id, None)

    def stream_running(self, stream_id: str) -> bool:
        """Whether a worker holds the stream's slot: it is kept alive while the stream runs,
        so a stream whose slot has expired lost its worker."""
        with self._lock:
            return self._slots.get(stream_id, 0.0) > time.time()

    async def stream_publish(
        self, session_id, stream_id: str, *, meta: dict, delta: str | None = None, ttl: float
    ) -> None:
        """Store a running stream's ``meta`` and append ``delta`` (a chunk) to its text."""
        with self._lock:
            record = self._records.setdefault(stream_id, {"meta": {}, "deltas": []})
            record["meta"] = dict(meta)
            if delta is not None:
                record["deltas"].append(delta)
            self._by_session[str(session_id)].add(stream_id)

    async def stream_forget(self, session_id, stream_id: str) -> None:
        """The stream ended: drop its live record."""
        with self._lock:
            self._records.pop(stream_id, None)
            self._by_session[str(session_id)].discard(stream_id)

    def stream_snapshot(self, stream_id: str) -> dict | None:
        """``{**meta, "deltas": [...]}`` of a running stream, or None."""
        with self._lock:
            record = self._records.get(stream_id)
            return None if record is None else {**record["meta"], "deltas": list(record["deltas"])}

    def stream_snapshots(self, session_id) -> list[dict]:
        """The snapshots of every running stream of a session."""
        with self._lock:
            ids = sorted(self._by_session.get(str(session_id), ()))
        found = [self.stream_snapshot(sid) for sid in ids]
        return [snapshot for snapshot in found if snapshot is not None]

    async def stream_stop_request(self, stream_id: str, payload: dict, *, ttl: float) -> None:
        """Ask whichever worker runs ``stream_id`` to stop it (``stream_stop_requested``).
        The first request stands: its ``by`` is who stopped the stream."""
        with self._lock:
            _payload, expires = self._stops.get(stream_id, (None, 0.0))
            if expires <= time.time():
                self._stops[stream_id] = (dict(payload), time.time() + ttl)

    async def stream_stop_requested(self, stream_id: str) -> dict | None:
        with self._lock:
            payload, expires = self._stops.get(stream_id, (None, 0.0))
            return payload if expires > time.time() else None

    def streams_reset(self) -> None:
        """Forget every slot, record and stop request (tests; a restarted state)."""
        with self._lock:
            self._slots.clear()
            self._records.clear()
            self._by_session.clear()
            self._stops.clear()


class RedisStreamState:
    """Streams shared by every worker through Redis: one sorted set of slots, and per stream
    a meta string, a list of deltas and a stop key; per session the set of its streams."""

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

    def __init__(self, clients: RedisClients) -> None:
        self._redis = clients

    def _key(self, *parts) -> str:
        return self._redis.key(*parts)

    def _async(self):
        return self._redis.async_client()

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
        expires = self._redis.sync.zscore(self._key("stream-slots"), stream_id)
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
        pipe = self._redis.sync.pipeline(transaction=True)
        pipe.get(meta_key)
        pipe.lrange(deltas_key, 0, -1)
        meta, deltas = pipe.execute()
        if meta is None:
            return None
        return {**orjson.loads(meta), "deltas": [delta.decode() for delta in deltas]}

    def stream_snapshots(self, session_id) -> list[dict]:
        session_key = self._key("session-streams", session_id)
        found = []
        for raw in sorted(self._redis.sync.smembers(session_key)):
            stream_id = raw.decode()
            snapshot = self.stream_snapshot(stream_id)
            if snapshot is None:
                # Its worker died and the record expired: forget it here too.
                self._redis.sync.srem(session_key, stream_id)
            else:
                found.append(snapshot)
        return found

    async def stream_stop_request(self, stream_id: str, payload: dict, *, ttl: float) -> None:
        key = self._key("stream", stream_id, "stop")
        await self._async().set(key, orjson.dumps(payload), ex=math.ceil(ttl), nx=True)

    async def stream_stop_requested(self, stream_id: str) -> dict | None:
        raw = await self._async().get(self._key("stream", stream_id, "stop"))
        return None if raw is None else orjson.loads(raw)

    def streams_reset(self) -> None:
        """Delete every key of this state: slots, records, stop requests."""
        sync = self._redis.sync
        sync.delete(self._key("stream-slots"))
        for pattern in (self._key("stream", "*"), self._key("session-streams", "*")):
            for key in sync.scan_iter(match=pattern, count=1000):
                sync.delete(key)


_stream_state: MemoryStreamState | RedisStreamState | None = None
_stream_state_lock = threading.Lock()


def get_stream_state() -> MemoryStreamState | RedisStreamState:
    """The process's stream state: in Redis when the chat state is (``REDIS_URL``)."""
    global _stream_state
    with _stream_state_lock:
        if _stream_state is None:
            clients = shared_redis()
            _stream_state = MemoryStreamState() if clients is None else RedisStreamState(clients)
        return _stream_state
