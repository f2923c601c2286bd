"""A worker killed with SIGKILL mid-traffic: no close frames, no cleanup, in-flight sends
cut. Its clients reconnect (to the other worker with ``REDIS_URL``; on the embedded
default, to a replacement started on the same port, since one process is the platform),
rejoin from their ``lastSeq`` and re-send what was never acked with the same ``clientId``.
Nothing acked is lost, nothing is stored twice, every client ends with every message of
its room once, in seq order."""

from __future__ import annotations

import asyncio
import random
import time
from urllib.parse import urlparse

import pytest

from tests.e2e.conftest import start_worker

from .chatclient import ChatClient, check_rooms, final_sync
from .conftest import make_platform

pytestmark = pytest.mark.e2e

USERS = 24
ROOMS = 4
MESSAGES = 20
KILL_AFTER_S = 4.0
RECOVER_WITHIN_S = 20.0
SEED = 9


@pytest.fixture
def kill_platform(rel_platform):
    """Workers of the reliability platform (same database and Redis) this test may kill."""
    platform = make_platform(dict(rel_platform.env), 2 if rel_platform.shared else 1, None)
    yield platform
    platform.stop()


async def test_killing_a_worker_loses_nothing_acked(kill_platform):
    p = kill_platform
    per_room = USERS // ROOMS
    seeded = await asyncio.to_thread(
        p.seed, USERS, [list(range(r * per_room, (r + 1) * per_room)) for r in range(ROOMS)]
    )
    urls = [p.ws_url(i) for i in range(len(p.workers))]
    clients = [
        ChatClient(urls, user, [seeded.rooms[i // per_room]], first=i % len(urls),
                   rng=random.Random(SEED + i))
        for i, user in enumerate(seeded.users)
    ]  # fmt: skip
    for client in clients:
        client.start()
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 60)
    victim = p.workers[0]
    on_victim = [c for c in clients if c.preferred % len(urls) == 0]
    deadline = time.monotonic() + 240

    async def send_all(client: ChatClient) -> None:
        room = next(iter(client.rooms))
        for k in range(MESSAGES):
            message = await client.send_message(
                room, f"k{k}", f"{client.user['username']}-{k}", deadline=deadline
            )
            assert message is not None, client.error_samples[-1:]
            await asyncio.sleep(client.rng.uniform(0.3, 0.7))

    senders = asyncio.gather(*(send_all(c) for c in clients))
    try:
        await asyncio.sleep(KILL_AFTER_S)
        acked_before = sum(len(c.acked) for c in clients)
        killed_at = time.monotonic()
        p.kill(victim)
        if len(p.workers) == 1:
            # The embedded default is one process: it comes back on the same port.
            port = urlparse(victim.url).port
            p.workers[0] = await asyncio.to_thread(start_worker, p.env, port=port, within=60)
        await asyncio.wait_for(senders, 200)
        await final_sync(clients)
        owners = {room: seeded.users[r * per_room] for r, room in enumerate(seeded.rooms)}
        truth = {room: await asyncio.to_thread(p.history, owners[room], room) for room in owners}
        counts = check_rooms(clients, truth)
    finally:
        senders.cancel()
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)

    back = [min((t for t in c.ready_times if t > killed_at), default=None) for c in on_victim]
    recovery = max((t - killed_at) for t in back if t is not None) if all(back) else None
    print(
        f"\nworker kill: {USERS} clients ({len(on_victim)} on the killed worker), "
        f"{len(p.workers)} worker(s); acked before the kill {acked_before}; "
        f"its clients all back in {recovery and round(recovery, 2)} s; {counts}"
    )
    assert counts["acked"] == USERS * MESSAGES == counts["stored"]
    assert recovery is not None and recovery <= RECOVER_WITHIN_S
    assert set(counts["errors"]) <= {"RATE_LIMITED", "UNAVAILABLE"}, counts["errors"]
    assert 1011 not in counts["close_codes"]
