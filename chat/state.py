"""Shared real-time state: presence, per-user throttles and offline queues.

With ``REDIS_URL`` set it lives in Redis, so every worker sees the same presence, counts
the same throttle windows and fills the same queues; without it, in this process's memory
(the embedded one-process default). Consumers and the broadcaster call the async methods
on the event loop; the few sync ones serve page views and sweeps.

Presence is a sorted set per user of connection id -> expiry time: the one place where a
user's connections are counted, so whether they are online is read from that count, never
from the order in which opens and closes were heard. A worker refreshes the entries of all
its open connections together every ``PRESENCE_HEARTBEAT`` (``chat.timers``); a worker
killed without closing its sockets leaves entries that simply expire, so nobody stays online
for longer than ``PRESENCE_TTL``, and ``presence_sweep`` (run by every worker's heartbeat)
finds the users whose last entries expired so that their going offline is announced too.
An index (user id -> the latest expiry of their entries) lets a sweep look only at those.

Redis connections come from a bounded pool per process and event loop that makes a caller
wait for a free connection (``REDIS_POOL_TIMEOUT``) rather than fail at once when all are
busy: bursts (every client of a worker dropping at once) queue instead of erroring.

While Redis is unreachable (restarting, failing over) the gateway keeps working on what
does not need it: presence reads as offline and is not announced, the offline queue is
neither drained nor lost (it stays in Redis), and throttles count in this process's memory
instead, so the limits still hold per worker. Durable events never depend on Redis: they
are in the database and replayed by seq. Nothing here raises for an outage except
``queue_for_offline`` (its caller logs it).

Other apps keep their own shared state on the same connections (``shared_redis``): the LLM
app's running streams live in ``llm.stream_state``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque

from django.conf import settings

from .grouped_calls import GroupedCalls
from .per_loop import PerLoop
from .windows import FixedWindows

logger = logging.getLogger(__name__)

PRESENCE_TTL = 45
PRESENCE_HEARTBEAT = 15
# A user's presence key outlives their entries long enough for a sweep (every heartbeat) to
# find the ones that expired, then goes on its own.
PRESENCE_KEY_TTL = 2 * PRESENCE_TTL
# Users per pipeline when refreshing presence: a beat sends a few pipelines of this many
# users (two commands each) rather than one huge one that would hold the loop while it is
# encoded and its replies parsed.
PRESENCE_BATCH = 500
QUEUE_LIMIT = 100
QUEUE_TTL = 7 * 24 * 3600


class MemoryState:
    """One process's state, for the embedded default and single-worker tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._presence: dict[int, dict[str, float]] = defaultdict(dict)
        self._windows = FixedWindows()
        # Users whose last entries expired, for the next sweep to report.
        self._lapsed: set[int] = set()
        self._queues: dict[int, deque[tuple[int, str]]] = defaultdict(
            lambda: deque(maxlen=QUEUE_LIMIT)
        )
        self._queued = 0

    def _live(self, user_id: int, now: float) -> dict[str, float]:
        entries = self._presence[user_id]
        expired = [c for c, exp in entries.items() if exp <= now]
        for conn in expired:
            del entries[conn]
        if expired and not entries:
            self._lapsed.add(user_id)
        return entries

    async def connection_open(
        self, user_id: int, conn_id: str
    ) -> tuple[bool, list[tuple[int, str]]]:
        now = time.time()
        with self._lock:
            entries = self._live(user_id, now)
            was_offline = not entries
            entries[conn_id] = now + PRESENCE_TTL
            self._lapsed.discard(user_id)
            queued = list(self._queues.get(user_id, ()))
        return was_offline, queued

    async def queue_delivered(self, user_id: int, upto: int) -> None:
        with self._lock:
            queue = self._queues.get(user_id)
            while queue and queue[0][0] <= upto:
                queue.popleft()
            if queue is not None and not queue:
                del self._queues[user_id]

    async def presence_refresh_many(self, entries) -> None:
        expires = time.time() + PRESENCE_TTL
        with self._lock:
            for user_id, conn_id in entries:
                self._presence[user_id][conn_id] = expires
                self._lapsed.discard(user_id)

    async def presence_remove_many(self, entries) -> None:
        with self._lock:
            for user_id, conn_id in entries:
                self._presence[user_id].pop(conn_id, None)

    async def presence_disconnect(self, user_id: int, conn_id: str) -> bool:
        with self._lock:
            entries = self._live(user_id, time.time())
            entries.pop(conn_id, None)
            if entries:
                return False
            self._lapsed.discard(user_id)  # announced by the caller
            return True

    def online(self, user_ids) -> set[int]:
        now = time.time()
        with self._lock:
            return {uid for uid in user_ids if self._live(uid, now)}

    async def online_now(self, user_ids) -> set[int]:
        return self.online(user_ids)

    async def presence_sweep(self) -> list[int]:
        """The users whose last entries expired (rather than closed) since the last sweep."""
        now = time.time()
        with self._lock:
            for user_id in list(self._presence):
                if not self._live(user_id, now):
                    del self._presence[user_id]
            lapsed, self._lapsed = list(self._lapsed), set()
        return lapsed

    async def throttle_hit(self, key: str, limit: int, window_ms: int) -> float | None:
        with self._lock:
            return self._windows.hit(key, limit, window_ms)

    async def queue_for_offline(self, user_ids, text: str) -> None:
        now = time.time()
        with self._lock:
            self._queued += 1
            for uid in user_ids:
                if not self._live(uid, now):
                    self._queues[uid].append((self._queued, text))

    def reset(self) -> None:
        with self._lock:
            self._presence.clear()
            self._lapsed.clear()
            self._windows.clear()
            self._queues.clear()


def _outage(what: str, exc: Exception) -> None:
    logger.warning("Redis unavailable (%s): %s: %s", what, type(exc).__name__, exc)


def _queue_entry(item: bytes) -> tuple[int, str]:
    """An offline queue's entry as (id, frame): "<id> <frame>" (an entry queued before ids
    were, a bare frame, reads as id 0)."""
    text = item.decode()
    head, _, frame = text.partition(" ")
    if head.isdigit():
        return int(head), frame
    return 0, text


def _by_user(entries) -> dict[int, list[str]]:
    """(user id, connection id) pairs grouped by user."""
    grouped: dict[int, list[str]] = defaultdict(list)
    for user_id, conn_id in entries:
        grouped[user_id].append(conn_id)
    return grouped


class RedisClients:
    """One process's connections to the shared Redis, and the names of its keys.

    A sync client for page views and sweeps, and an async client per event loop (redis.asyncio
    clients are bound to the loop that made them), each from a bounded pool that makes a
    caller wait for a free connection (``REDIS_POOL_TIMEOUT``). Every key starts with the
    platform's prefix, so ``RedisState.reset`` and two platforms on one Redis stay apart.
    """

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self.sync = redis.Redis.from_pool(
            redis.BlockingConnectionPool.from_url(url, **self._pool_options())
        )
        self.errors = (redis.RedisError, OSError)
        # ``async_client()``: the running event loop's client.
        self.async_client = PerLoop(self._async_client_new)

    @staticmethod
    def _pool_options() -> dict:
        return {
            "max_connections": settings.REDIS_MAX_CONNECTIONS,
            "timeout": settings.REDIS_POOL_TIMEOUT,
        }

    def _async_client_new(self):
        import redis.asyncio

        pool = redis.asyncio.BlockingConnectionPool.from_url(self.url, **self._pool_options())
        return redis.asyncio.Redis.from_pool(pool)

    def key(self, *parts) -> str:
        return ":".join((self.prefix, *map(str, parts)))


class RedisState:
    """State shared by every worker through Redis."""

    def __init__(self, url: str, prefix: str) -> None:
        self.clients = RedisClients(url, prefix)
        self._sync = self.clients.sync
        self._errors = self.clients.errors
        # Where throttles count while Redis is unreachable.
        self._local = MemoryState()
        self._throttle_calls = PerLoop(lambda: GroupedCalls(self._count_hits))

    def _async(self):
        return self.clients.async_client()

    def _key(self, *parts) -> str:
        return self.clients.key(*parts)

    async def connection_open(
        self, user_id: int, conn_id: str
    ) -> tuple[bool, list[tuple[int, str]]]:
        """Add the connection's presence entry and read the user's queued frames, in one
        round trip: whether the user was offline before, and the frames with their ids. They
        stay queued until ``queue_delivered`` says they went out. In an outage (False, []):
        nothing is announced, the heartbeat adds the entry once Redis is back, and the frames
        stay queued."""
        key, queue, now = self._key("presence", user_id), self._key("queue", user_id), time.time()
        pipe = self._async().pipeline(transaction=True)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zcard(key)
        pipe.zadd(key, {conn_id: now + PRESENCE_TTL})
        pipe.expire(key, PRESENCE_KEY_TTL)
        pipe.zadd(self._key("presence-index"), {user_id: now + PRESENCE_TTL}, gt=True)
        pipe.lrange(queue, 0, -1)
        try:
            _, before, _, _, _, items = await pipe.execute()
        except self._errors as exc:
            _outage("presence and offline queue", exc)
            return False, []
        return before == 0, [_queue_entry(item) for item in items]

    # KEYS: the user's queue. ARGV: the id of the last entry delivered. Entries are taken
    # off the head only: the queue grows at its tail and is trimmed at its head, so what was
    # delivered is the head, or was trimmed away already, and what came later stays.
    _QUEUE_DELIVERED = """
    while true do
        local head = redis.call('LINDEX', KEYS[1], 0)
        if not head then return 0 end
        local id = tonumber(string.match(head, '^(%d+) '))
        if id ~= nil and id > tonumber(ARGV[1]) then return 0 end
        redis.call('LPOP', KEYS[1])
    end
    """

    async def queue_delivered(self, user_id: int, upto: int) -> None:
        """Take the user's queued frames up to id ``upto`` off the queue: they went out. In
        an outage they stay, and come again with the next connection (seq de-duplicates)."""
        try:
            await self._async().eval(self._QUEUE_DELIVERED, 1, self._key("queue", user_id), upto)
        except self._errors as exc:
            _outage("offline queue", exc)

    async def presence_refresh_many(self, entries) -> None:
        """Push back the expiry of each (user id, connection id) entry: per user one ZADD of
        all its connections and one EXPIRE, ``PRESENCE_BATCH`` users per pipeline."""
        expires = time.time() + PRESENCE_TTL
        by_user = _by_user(entries)
        users = list(by_user)
        index = self._key("presence-index")
        for start in range(0, len(users), PRESENCE_BATCH):
            pipe = self._async().pipeline(transaction=False)
            batch = users[start : start + PRESENCE_BATCH]
            for user_id in batch:
                key = self._key("presence", user_id)
                pipe.zadd(key, dict.fromkeys(by_user[user_id], expires))
                pipe.expire(key, PRESENCE_KEY_TTL)
            pipe.zadd(index, dict.fromkeys(batch, expires), gt=True)
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

    # KEYS: the users' presence keys. ARGV: now. The (1-based) positions of the keys with a
    # live entry. One command whatever the number of users: a pipeline of one ZCOUNT per user
    # costs the client far more to pack and parse for a room of hundreds (``session:join``).
    _ONLINE = """
    local online = {}
    for i, key in ipairs(KEYS) do
        if redis.call('ZCOUNT', key, ARGV[1], '+inf') > 0 then online[#online + 1] = i end
    end
    return online
    """

    def _online_args(self, user_ids: list[int]) -> tuple:
        return (
            self._ONLINE,
            len(user_ids),
            *(self._key("presence", u) for u in user_ids),
            time.time(),
        )

    def online(self, user_ids) -> set[int]:
        """The users with an open connection; nobody, while Redis can't be read."""
        user_ids = list(user_ids)
        if not user_ids:
            return set()
        try:
            positions = self._sync.eval(*self._online_args(user_ids))
        except self._errors as exc:
            _outage("presence", exc)
            return set()
        return {user_ids[i - 1] for i in positions}

    async def online_now(self, user_ids) -> set[int]:
        """``online`` on the event loop."""
        user_ids = list(user_ids)
        if not user_ids:
            return set()
        try:
            positions = await self._async().eval(*self._online_args(user_ids))
        except self._errors as exc:
            _outage("presence", exc)
            return set()
        return {user_ids[i - 1] for i in positions}

    # KEYS: the index, then the presence keys of the users it has due. ARGV: now, then those
    # users' ids. Each user's expired entries go; a user left with none leaves the index and
    # is reported if entries expired just now (one who closed their last connection has none
    # to expire: their going offline was announced then). In one script, so one worker alone
    # reports a user, and no connection opening meanwhile is missed.
    _PRESENCE_SWEEP = """
    local lapsed = {}
    for i = 2, #KEYS do
        local uid = ARGV[i]
        local expired = redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[1])
        local last = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
        if #last == 0 then
            redis.call('ZREM', KEYS[1], uid)
            if expired > 0 then
                table.insert(lapsed, uid)
            end
        else
            redis.call('ZADD', KEYS[1], last[2], uid)
        end
    end
    return lapsed
    """

    async def presence_sweep(self) -> list[int]:
        """The users whose last entries expired (a killed worker's) since the last sweep,
        each reported to one worker only; none in an outage."""
        index, now = self._key("presence-index"), time.time()
        try:
            due = await self._async().zrangebyscore(index, "-inf", now, start=0, num=PRESENCE_BATCH)
            if not due:
                return []
            user_ids = [int(uid) for uid in due]
            keys = [index, *(self._key("presence", uid) for uid in user_ids)]
            lapsed = await self._async().eval(
                self._PRESENCE_SWEEP, len(keys), *keys, now, *user_ids
            )
        except self._errors as exc:
            _outage("presence sweep", exc)
            return []
        return [int(uid) for uid in lapsed]

    # KEYS: throttle counters. ARGV: each one's window in ms. One hit on each (a key may come
    # more than once), and per key its count and time to live after its hit: the frames of a
    # worker that arrive while one round trip is out are counted together in the next.
    _THROTTLE_HITS = """
    local out = {}
    for i, key in ipairs(KEYS) do
        local count = redis.call('INCR', key)
        local ttl = redis.call('PTTL', key)
        if ttl < 0 then
            redis.call('PEXPIRE', key, ARGV[i])
            ttl = tonumber(ARGV[i])
        end
        out[#out + 1] = count
        out[#out + 1] = ttl
    end
    return out
    """

    async def throttle_hit(self, key: str, limit: int, window_ms: int) -> float | None:
        try:
            count, ttl = await self._throttle_calls().submit(
                (self._key("throttle", key), window_ms)
            )
        except self._errors as exc:
            _outage("throttles count per worker meanwhile", exc)
            return await self._local.throttle_hit(key, limit, window_ms)
        return max(ttl, 1) / 1000 if count > limit else None

    async def _count_hits(self, hits: list[tuple[str, int]]) -> list[tuple[int, int]]:
        keys = [key for key, _ in hits]
        counts = await self._async().eval(
            self._THROTTLE_HITS, len(keys), *keys, *(window for _, window in hits)
        )
        return [(counts[2 * i], counts[2 * i + 1]) for i in range(len(hits))]

    # KEYS: n presence keys, then the same users' n queue keys, then the counter of queued
    # frames. ARGV: now, the frame, the queue limit, the queue TTL. Checking presence and
    # pushing in one script means one round trip per frame whatever the room's size, and no
    # user turns online between the check and the push. Each entry is "<id> <frame>", ids
    # growing, so delivery can take off exactly what went out (``queue_delivered``).
    _QUEUE_FOR_OFFLINE = """
    local n = (#KEYS - 1) / 2
    local entry = redis.call('INCR', KEYS[#KEYS]) .. ' ' .. ARGV[2]
    for i = 1, n do
        if redis.call('ZCOUNT', KEYS[i], ARGV[1], '+inf') == 0 then
            redis.call('RPUSH', KEYS[n + i], entry)
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
        keys.append(self._key("queued"))
        await self._async().eval(
            self._QUEUE_FOR_OFFLINE, len(keys), *keys, time.time(), text, QUEUE_LIMIT, QUEUE_TTL
        )

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


def shared_redis() -> RedisClients | None:
    """The Redis connections of this process's state, or None on the embedded default: other
    apps keep their shared state there too, through the same bounded pools."""
    state = get_state()
    return state.clients if isinstance(state, RedisState) else None
