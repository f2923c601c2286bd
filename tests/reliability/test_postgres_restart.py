"""PostgreSQL restarted mid-traffic (a crash restart: ``pg_ctl restart -m immediate``, so
only what was committed survives, through WAL recovery), under workers using Django's
psycopg pool.

- acked means committed: every message acked before, during or after the restart is in the
  database afterwards;
- a send the database could not take is refused with a clear error (the database is
  unavailable, ``retryAfter``), never half-done; the client's retry with the same
  ``clientId`` is stored once;
- once PostgreSQL is back, requests succeed again at once (no stale pooled connection
  fails a request), and the workers' connections come back within the pool's size.

The cluster is private (``initdb`` in a temporary folder, on a free port); the shared
PostgreSQL is never touched. On the embedded default (SQLite) there is no database server
to restart: skipped.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

from .chatclient import ChatClient, check_rooms, final_sync
from .conftest import make_platform, migrate, worker_env

pytestmark = pytest.mark.e2e

USERS = 12
ROOMS = 3
MESSAGES = 25
POOL_MAX = 4
RESTART_AFTER_S = 3.0
SEED = 5432


@pytest.fixture
def pg_platform(rel_platform, private_postgres):
    if not os.environ.get("DATABASE_URL"):
        pytest.skip("DATABASE_URL is unset: the embedded default (SQLite) has no server to restart")
    private_postgres.execute('CREATE DATABASE "chat"')
    env = worker_env(
        DATABASE_URL=private_postgres.database_url("chat"),
        DATABASE_POOL_MIN="2",
        DATABASE_POOL_MAX=str(POOL_MAX),
        OLLAMA_URL=rel_platform.env["OLLAMA_URL"],
    )
    migrate(env)
    platform = make_platform(env, 2 if env.get("REDIS_URL") else 1, None)
    yield platform
    platform.stop()


def clear_error(error: dict) -> bool:
    return (
        error["code"] == "INTERNAL"
        and "retryAfter" in error
        and "database is unavailable" in error["message"]
    )


def backends(cluster) -> int:
    rows = cluster.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'chat' "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    return rows[0][0]


async def test_a_postgres_restart_keeps_every_acked_message_once(pg_platform, private_postgres):
    p, cluster = pg_platform, private_postgres
    per_room = USERS // ROOMS
    seeded = await asyncio.to_thread(
        p.seed, USERS, [list(range(r * per_room, (r + 1) * per_room)) for r in range(ROOMS)]
    )
    mark = p.log_mark()
    urls = [p.ws_url(i) for i in range(len(p.workers))]
    clients = [
        ChatClient(urls, user, [seeded.rooms[i // per_room]], first=i % len(urls),
                   rng=random.Random(SEED + i))
        for i, user in enumerate(seeded.users)
    ]  # fmt: skip
    for client in clients:
        client.start()
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 60)
    deadline = time.monotonic() + 240
    replies: list[tuple[float, dict]] = []  # (when the request was sent, its outcome)

    async def send_all(client: ChatClient) -> None:
        room = next(iter(client.rooms))
        for k in range(MESSAGES):
            client_id = f"{client.user['username']}-{k}"
            while True:
                sent_at = time.monotonic()
                try:
                    reply = await client.request(
                        "message:send",
                        {"sessionId": room, "content": f"p{k}", "clientId": client_id},
                    )
                except Exception as exc:  # the socket went: retry on the next one
                    replies.append((sent_at, {"code": type(exc).__name__}))
                    await client.wait_ready(deadline)
                    continue
                if reply["event"] == "ack":
                    client.acked.append(reply["data"])
                    replies.append((sent_at, {"code": "ack"}))
                    break
                replies.append((sent_at, reply["data"]))
                wait = reply["data"].get("retryAfter", 1) * client.rng.uniform(0.3, 0.6)
                await asyncio.sleep(wait)
            await asyncio.sleep(client.rng.uniform(0.3, 0.6))

    senders = asyncio.gather(*(send_all(c) for c in clients))
    try:
        await asyncio.sleep(RESTART_AFTER_S)
        during_traffic = await asyncio.to_thread(backends, cluster)
        acked_before = sum(len(c.acked) for c in clients)
        down_at = time.monotonic()
        await asyncio.to_thread(cluster.restart, "immediate")
        up_at = time.monotonic()
        await asyncio.wait_for(senders, 200)
        first_ack_after = min(t for t, r in replies if t > up_at and r["code"] == "ack")
        # A retry of an acked clientId returns the first message: stored once.
        for client in clients:
            room = next(iter(client.rooms))
            for message in client.acked[:3]:
                again = await client.request(
                    "message:send",
                    {"sessionId": room, "content": "again", "clientId": message["clientId"]},
                )
                assert (again["data"]["id"], again["data"]["seq"]) == (
                    message["id"],
                    message["seq"],
                )
        # A restart while the pool sits idle: the next requests must not meet the connections
        # the restart broke.
        await asyncio.to_thread(cluster.restart, "fast")
        time.monotonic()
        quiet = []
        for client in clients:
            await client.wait_ready(deadline)
            room = next(iter(client.rooms))
            reply = await client.request(
                "message:send",
                {"sessionId": room, "content": "after", "clientId": f"{client.user['id']}-q"},
            )
            quiet.append(reply["event"] if reply["event"] == "ack" else reply["data"])
            if reply["event"] == "ack":
                client.acked.append(reply["data"])
        await final_sync(clients)
        owners = {room: seeded.users[r * per_room] for r, room in enumerate(seeded.rooms)}
        truth = {room: await asyncio.to_thread(p.history, owners[room], room) for room in owners}
        counts = check_rooms(clients, truth)
        await asyncio.sleep(1)
        after = await asyncio.to_thread(backends, cluster)
        stored = await asyncio.to_thread(
            cluster.execute,
            "SELECT count(*), count(DISTINCT (session_id, author_id, client_id)) FROM chat_message",
            "chat",
        )
    finally:
        senders.cancel()
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)

    refusals = [r for t, r in replies if r["code"] != "ack"]
    # pg_ctl -w returns once the server accepts connections: a request sent well after that
    # and refused would be a stale pooled connection failing it (the margin is for a loaded
    # machine, where the pool's reconnection takes a moment). The idle restart above checks
    # stale connections exactly.
    late = [r for t, r in replies if t > up_at + 5.0 and r["code"] != "ack"]
    summary = {
        "restart_s": round(up_at - down_at, 2),
        "first_acked_send_after_up_s": round(first_ack_after - up_at, 2),
        "acked_before_restart": acked_before,
        "refused_or_cut": len(refusals),
        "refusals_after_up": len(late),
        "refused_sent_vs_up_s": [round(t - up_at, 2) for t, r in replies if r["code"] != "ack"],
        "first_sends_after_an_idle_restart": quiet,
        "backends_during_traffic": during_traffic,
        "backends_after": after,
        "rows_and_distinct_client_ids": stored[0],
        **counts,
    }
    print(f"\npostgres restart: {summary}")
    assert counts["acked"] == USERS * (MESSAGES + 1) == counts["stored"]
    assert stored[0][0] == stored[0][1] == USERS * (MESSAGES + 1)
    assert quiet == ["ack"] * USERS, quiet
    assert all(clear_error(r) or r["code"] == "Disconnected" for r in refusals), refusals[:5]
    assert not late, late[:5]
    assert 1 <= after <= POOL_MAX * len(p.workers), summary
    assert "unhandled error" not in p.log_since(mark)
