"""Presence on real workers: a user with any open connection on any worker is online to
everyone, however the opens and closes of their reloads interleave across workers, and the
last close makes them offline."""

import asyncio
import json

import pytest

from .test_gateway_e2e import next_event, reply_to

pytestmark = pytest.mark.e2e


async def frames_until_quiet(ws, quiet: float = 1.0) -> list[dict]:
    """Every frame that arrives until none has for ``quiet`` seconds."""
    frames = []
    while True:
        try:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), quiet)))
        except TimeoutError:
            return frames


def statuses_of(frames: list[dict], user: dict) -> list[str]:
    return [
        change["status"]
        for f in frames
        if f["event"] == "presence:changes"
        for change in f["data"]["changes"]
        if change["user"]["id"] == user["id"]
    ]


async def test_overlapping_close_and_open_on_two_workers_keep_the_user_online(platform):
    """Each reload opens the new connection on the other worker before the old one closes:
    alice never sees bob offline, until his last connection closes."""
    p = platform
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    old = await p.connect(bob, 0)
    a = await p.connect(alice, 1)
    try:
        joined = await reply_to(a, "session:join", {"sessionId": room})
        assert {e["user"]["id"]: e["status"] for e in joined["data"]["presence"]}[bob["id"]] == (
            "online"
        )
        seen = []
        for i in range(10):
            new = await p.connect(bob, i + 1)
            await reply_to(new, "session:join", {"sessionId": room})
            await old.close()
            old = new
            seen += await frames_until_quiet(a, 0.3)
        seen += await frames_until_quiet(a)
        assert "offline" not in statuses_of(seen, bob), statuses_of(seen, bob)

        await old.close()
        (offline,) = (await next_event(a, "presence:changes"))["data"]["changes"]
        assert offline["user"]["id"] == bob["id"]
        assert offline["status"] == "offline" and offline["lastSeenAt"]
    finally:
        await a.close()


async def test_after_each_quick_reload_everyone_sees_the_user_online(platform):
    """A reload closes the old connection, then opens the new one, on the other worker: the
    old one's "offline" may be announced after the new one's "online". Whatever the order,
    once things settle alice sees bob online, and bob never sees himself offline."""
    p = platform
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a = await p.connect(alice, 0)
    b = await p.connect(bob, 1)
    try:
        await reply_to(a, "session:join", {"sessionId": room})
        await reply_to(b, "session:join", {"sessionId": room})
        await frames_until_quiet(a, 0.5)
        last_seen_by_alice, bob_saw = [], []
        for i in range(11):
            await b.close()
            b = await p.connect(bob, i)
            joined = await reply_to(b, "session:join", {"sessionId": room})
            mine = {e["user"]["id"]: e["status"] for e in joined["data"]["presence"]}
            bob_saw.append(mine[bob["id"]])
            bob_saw += statuses_of(await frames_until_quiet(b), bob)
            statuses = statuses_of(await frames_until_quiet(a, 0.5), bob)
            if statuses:
                last_seen_by_alice.append(statuses[-1])
        assert set(last_seen_by_alice) <= {"online"}, last_seen_by_alice
        assert set(bob_saw) == {"online"}, bob_saw  # his join's presence; no frame about him
    finally:
        await a.close()
        await b.close()


async def test_a_last_close_is_announced_once_to_the_other_worker(platform):
    """Presence changes are gathered per interval: bob's going offline on one worker reaches
    alice on the other as exactly one entry, with when he was last seen."""
    p = platform
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a = await p.connect(alice, 0)
    b = await p.connect(bob, len(p.workers) - 1)
    try:
        await reply_to(a, "session:join", {"sessionId": room})
        await frames_until_quiet(a, 1.5)

        await b.close()
        frames = await frames_until_quiet(a, 2.5)

        assert statuses_of(frames, bob) == ["offline"]
        (change,) = [c for f in frames for c in f["data"].get("changes", [])]
        assert change["lastSeenAt"]
    finally:
        await a.close()


async def test_a_reload_on_one_worker_inside_the_interval_announces_nothing(platform):
    p = platform
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a = await p.connect(alice, 0)
    b = await p.connect(bob, len(p.workers) - 1)
    try:
        await reply_to(a, "session:join", {"sessionId": room})
        await frames_until_quiet(a, 1.5)

        await b.close()
        b = await p.connect(bob, len(p.workers) - 1)

        assert statuses_of(await frames_until_quiet(a, 2.5), bob) == []
    finally:
        await a.close()
        await b.close()
