"""Zero loss under churn: many clients in many rooms send with ``clientId`` while a tenth of
them keep dropping their sockets (cleanly or as a network cut) and reconnecting to the
other worker. After live delivery plus ``lastSeq`` replay every client holds every acked
message of its room exactly once, in ``seq`` order, and the database holds each once.

With ``REDIS_URL`` (two workers on PostgreSQL and Redis) it runs at the issue's size: 200
clients in 20 rooms, 50 messages each (10,000 messages, 100,000 deliveries); 287 s on this
shared 2-core machine with other jobs running (sent in 257 s: the offered rate, ``SEND_RATE``
a second, makes 200 s the least). On the embedded default's one process on SQLite, 30
clients in 3 rooms, 50 messages each (1,500 messages; 114 s). ``CHURN_CLIENTS``,
``CHURN_ROOMS`` and ``CHURN_MESSAGES`` change the size. Each send is one transaction through
its worker's single database thread; when that thread falls far behind, a closing socket's
clean-up waits there too, and daphne kills a consumer that takes over 10 s to close (seen
once at 200 clients before the offline queueing left that thread).

The per-user ``message:send`` throttle stays at the contract's 30 a minute (no setting
changes the rule of one event): a client that hits it waits the ``retryAfter`` it is told,
as a real client would.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import httpx
import pytest

from .chatclient import ChatClient, check_rooms, final_sync
from .conftest import tracebacks

pytestmark = pytest.mark.e2e

# Two workers share the load with REDIS_URL; the embedded default is one process on SQLite.
SHARED = bool(os.environ.get("REDIS_URL"))
CLIENTS = int(os.environ.get("CHURN_CLIENTS", "200" if SHARED else "30"))
ROOMS = int(os.environ.get("CHURN_ROOMS", "20" if SHARED else "3"))
MESSAGES = int(os.environ.get("CHURN_MESSAGES", "50"))
CHURN_SHARE = 0.10
# Messages a second all clients together offer at most (each pauses about CLIENTS / SEND_RATE
# seconds between its sends): a little more than the workers store, so they stay busy while
# a send waits seconds, not tens of seconds, behind a worker's one database thread (where a
# closing socket's clean-up waits too, and daphne kills one that takes over 10 s).
SEND_RATE = 50
SEED = 20240611
BAD_CLOSES = {1011, 1009, 4401, 4403}


async def test_no_message_is_lost_or_doubled_under_churn(rel_platform):
    p = rel_platform
    per_room = CLIENTS // ROOMS
    seeded = await asyncio.to_thread(
        p.seed, CLIENTS, [list(range(r * per_room, (r + 1) * per_room)) for r in range(ROOMS)]
    )
    mark = p.log_mark()
    rng = random.Random(SEED)
    urls = [p.ws_url(i) for i in range(len(p.workers))]
    clients = [
        ChatClient(
            urls,
            user,
            [seeded.rooms[i // per_room]],
            first=i % len(urls),
            rng=random.Random(SEED + i),
        )
        for i, user in enumerate(seeded.users)
    ]
    churners = rng.sample(clients, max(1, int(CLIENTS * CHURN_SHARE)))
    started = time.monotonic()
    for i, client in enumerate(clients):
        client.start()
        if i % 10 == 9:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 120)
    connected_in = time.monotonic() - started

    deadline = time.monotonic() + 400
    sending = asyncio.Event()
    sending.set()
    statuses: list[int] = []

    async def send_all(client: ChatClient) -> None:
        room = next(iter(client.rooms))
        await asyncio.sleep(client.rng.uniform(0, 3))
        for k in range(MESSAGES):
            message = await client.send_message(
                room, f"m{k} from {client.user['username']}", f"{client.user['username']}-{k}",
                deadline=deadline,
            )  # fmt: skip
            assert message is not None, client.error_samples[-1:]
            await asyncio.sleep(client.rng.uniform(0.5, 1.5) * CLIENTS / SEND_RATE)

    async def churn(client: ChatClient, index: int) -> None:
        room = next(iter(client.rooms))
        abrupt = index % 2 == 0
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {client.user['access']}"}, timeout=30
        ) as http:
            # Each reconnect costs a session:join (5 a minute per session): about 4 a minute.
            while sending.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(client.rng.uniform(13, 17))
                if not sending.is_set():
                    return
                await client.drop(abrupt=abrupt)
                abrupt = not abrupt
                # A reloading page also reads the history over REST.
                base = p.url(client.preferred)
                response = await http.get(f"{base}/api/chat/sessions/{room}/messages?limit=20")
                statuses.append(response.status_code)

    churn_tasks = [asyncio.create_task(churn(c, i)) for i, c in enumerate(churners)]
    try:
        await asyncio.gather(*(send_all(c) for c in clients))
        sent_in = time.monotonic() - started
        sending.clear()
        await asyncio.gather(*churn_tasks)
        await final_sync(clients)
        owners = {room: seeded.users[r * per_room] for r, room in enumerate(seeded.rooms)}
        truth = {
            room: await asyncio.to_thread(p.history, owners[room], room) for room in seeded.rooms
        }
        counts = check_rooms(clients, truth)
    finally:
        sending.clear()
        for task in churn_tasks:
            task.cancel()
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)

    print(
        f"\nchurn: {CLIENTS} clients, {ROOMS} rooms, {len(p.workers)} worker(s), "
        f"{len(churners)} churning; connected in {connected_in:.1f} s, sent in {sent_in:.1f} s; "
        f"{counts}; REST statuses {sorted(set(statuses))}"
    )
    assert counts["acked"] == CLIENTS * MESSAGES == counts["stored"]
    assert counts["delivered_live"] + counts["delivered_by_replay"] == CLIENTS * MESSAGES * per_room
    samples = [f for c in clients for f in c.error_samples if "retryAfter" not in f["data"]]
    # UNAVAILABLE: the retryable "database unavailable" refusal (seen on SQLite, whose write
    # lock a starved machine can hold past its 20 s timeout); the retry is stored once.
    assert set(counts["errors"]) <= {"RATE_LIMITED", "UNAVAILABLE"}, samples[:5]
    assert not BAD_CLOSES & set(counts["close_codes"]), counts["close_codes"]
    assert all(status < 500 for status in statuses), statuses
    assert sum(c.connects for c in churners) > len(churners), "nobody reconnected"
    assert not tracebacks(p.log_since(mark))
