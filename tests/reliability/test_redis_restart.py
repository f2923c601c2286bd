"""Redis killed (SIGKILL) and restarted mid-traffic, under two workers that use it for the
channel layer, the cache, presence, throttles and offline queues.

- no worker crashes, and no socket is closed by the outage;
- a send during the outage is either acked (and then stored and delivered, by replay if the
  broadcast was lost) or refused with a clear error;
- live delivery between the two workers resumes within 10 s of Redis coming back, on the
  sockets that were open all along (their group subscriptions are restored);
- after replay every client holds every acked message exactly once, in seq order.

The Redis is private (a ``redis-server`` on a free port): the shared one is never touched.
With ``REDIS_URL`` unset (the embedded default) the platform has no Redis to lose: skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time

import pytest
import websockets

from .chatclient import ChatClient, check_rooms, final_sync
from .conftest import make_platform, worker_env

pytestmark = pytest.mark.e2e

USERS = 16
ROOMS = 4
OUTAGE_S = 4.0
RESUME_WITHIN_S = 10.0
SEED = 6379


def clear_or_code(error: dict) -> str:
    """``UNAVAILABLE`` for the platform's outage refusal (it says what is down and when to
    retry), else the error's code."""
    if error["code"] == "INTERNAL" and "retryAfter" in error and "unavailable" in error["message"]:
        return "UNAVAILABLE"
    return error["code"]


async def connect_during_outage(url: str, user: dict) -> str:
    """What a new connection gets while Redis is down: connected, or a clear refusal."""
    try:
        async with websockets.connect(f"{url}?token={user['access']}", open_timeout=20) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if first["event"] == "connection:success":
                return "connected"
            with contextlib.suppress(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 20)
            return f"{clear_or_code(first['data'])} then close {ws.close_code}"
    except websockets.ConnectionClosed as exc:
        return f"closed {exc.rcvd.code if exc.rcvd else None}"


@pytest.fixture
def redis_platform(rel_platform, private_redis):
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is unset: the embedded default has no Redis to restart")
    env = worker_env(
        DATABASE_URL=rel_platform.env["DATABASE_URL"],
        REDIS_URL=private_redis.url,
        OLLAMA_URL=rel_platform.env["OLLAMA_URL"],
    )
    platform = make_platform(env, 2, None)
    yield platform
    platform.stop()


async def test_a_redis_restart_loses_nothing_acked_and_delivery_resumes(
    redis_platform, private_redis
):
    p = redis_platform
    per_room = USERS // ROOMS
    seeded = await asyncio.to_thread(
        p.seed, USERS + 2, [list(range(r * per_room, (r + 1) * per_room)) for r in range(ROOMS)]
        + [[USERS, USERS + 1]],
    )  # fmt: skip
    probe_room = seeded.rooms[-1]
    urls = [p.ws_url(0), p.ws_url(1)]
    clients = [
        ChatClient(urls, user, [seeded.rooms[i // per_room]], first=i % 2,
                   rng=random.Random(SEED + i))
        for i, user in enumerate(seeded.users[:USERS])
    ]  # fmt: skip
    # The probe: a sender on worker 0, a listener on worker 1 that never reconnects itself.
    sender = ChatClient(urls[:1], seeded.users[USERS], [probe_room], rng=random.Random(1))
    listener = ChatClient(urls[1:], seeded.users[USERS + 1], [probe_room], rng=random.Random(2))
    everyone = [*clients, sender, listener]
    for client in everyone:
        client.start()
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in everyone)), 60)

    outcomes: list[tuple[float, str]] = []
    stop_at = time.monotonic() + 600
    running = asyncio.Event()
    running.set()
    deadline = time.monotonic() + 240

    async def traffic(client: ChatClient) -> None:
        room = next(iter(client.rooms))
        k = 0
        while running.is_set() and time.monotonic() < stop_at:
            try:
                reply = await client.request(
                    "message:send",
                    {"sessionId": room, "content": f"t{k}", "clientId": f"{client.user['id']}-{k}"},
                    within=20,
                )
                outcome = "ack" if reply["event"] == "ack" else clear_or_code(reply["data"])
                if outcome == "ack":
                    client.acked.append(reply["data"])
                    k += 1
                else:
                    client.record_error(reply)
            except Exception as exc:
                outcome = type(exc).__name__
            outcomes.append((time.monotonic(), outcome))
            # 16 senders at ~0.7 a second each stay under 30 a minute for this test's length.
            await asyncio.sleep(client.rng.uniform(1.6, 2.2))

    tasks = [asyncio.create_task(traffic(c)) for c in clients]
    mark = p.log_mark()
    try:
        await asyncio.sleep(5)
        killed_at = time.monotonic()
        private_redis.kill()
        await asyncio.sleep(1)
        newcomer = await connect_during_outage(urls[0], seeded.users[0])
        await asyncio.sleep(max(0.0, killed_at + OUTAGE_S - time.monotonic()))
        await asyncio.to_thread(private_redis.start)
        back_at = time.monotonic()

        # Probe until a message sent after Redis came back reaches the other worker live.
        resumed_at = None
        k = 0
        while time.monotonic() < back_at + RESUME_WITHIN_S + 20:
            k += 1
            before = listener.live_applied
            sent = await sender.send_message(
                probe_room, f"probe {k}", f"probe-{k}", deadline=deadline,
                retry_on=("INTERNAL",),
            )  # fmt: skip
            for _ in range(10):
                log = listener.rooms[probe_room]
                if log.last >= sent["seq"] and listener.live_applied > before:
                    resumed_at = time.monotonic()
                    break
                await asyncio.sleep(0.05)
            if resumed_at:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(5)
        running.clear()
        await asyncio.gather(*tasks)
        await final_sync(everyone)
        owners = {room: seeded.users[r * per_room] for r, room in enumerate(seeded.rooms[:-1])}
        owners[probe_room] = seeded.users[USERS]
        truth = {room: await asyncio.to_thread(p.history, owners[room], room) for room in owners}
        counts = check_rooms(everyone, truth)
    finally:
        running.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(c.stop() for c in everyone), return_exceptions=True)

    during = [o for t, o in outcomes if killed_at <= t <= back_at]
    summary = {
        "outage_s": round(back_at - killed_at, 1),
        "new_connection_during_outage": newcomer,
        "resumed_after_s": None if resumed_at is None else round(resumed_at - back_at, 2),
        "sends_during_outage": {o: during.count(o) for o in sorted(set(during))},
        "all_outcomes": {o: [x for _, x in outcomes].count(o) for o in {x for _, x in outcomes}},
        **counts,
    }
    print(f"\nredis restart: {summary}")
    assert all(w.process.poll() is None for w in p.workers), "a worker died"
    assert resumed_at is not None and resumed_at - back_at <= RESUME_WITHIN_S, summary
    if os.environ.get("CHANNEL_LAYER", "pubsub") == "pubsub":
        # The pub/sub layer's sockets live through the outage (redis-py re-subscribes).
        assert listener.connects == 1, "the listener's socket was closed by the outage"
        assert set(during) <= {"ack", "RATE_LIMITED", "UNAVAILABLE"}, summary
    else:
        # The core layer's consumers read their channel from Redis: the outage ends their
        # sockets, with a clear 4503, and the clients come back and replay.
        assert set(counts["close_codes"]) <= {4503, 1000}, summary
        assert set(during) <= {"ack", "RATE_LIMITED", "UNAVAILABLE", "Disconnected"}, summary
    assert newcomer in ("connected", "UNAVAILABLE then close 4503"), summary
    assert not {1011} & set(counts["close_codes"]), counts["close_codes"]
    log = p.log_since(mark)
    assert "Unhandled error" not in log and "unhandled error" not in log
