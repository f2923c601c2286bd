"""The worker's shared timers (``chat.timers``): one heartbeat keeps every connection's
presence alive, one alarm closes connections whose token expired, and a closed connection
leaves the registry, with no task of its own per connection."""

import asyncio
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from rest_framework_simplejwt.tokens import AccessToken

from chat import state as state_module
from chat import timers as timers_module
from chat.services.sessions import session_create
from chat.state import get_state
from chat.timers import ConnectionTimers, connection_timers

from .conftest import next_event, request

pytestmark = [pytest.mark.django_db(transaction=True)]


def _tasks_running(function) -> int:
    return sum(
        1
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == function.__qualname__
    )


async def _online(user_id: int) -> bool:
    return user_id in await sync_to_async(get_state().online)([user_id])


def _short_token(user, seconds: int) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


@pytest.fixture
def fast_presence(monkeypatch):
    """Entries live 1 s and the shared heartbeat beats every 0.2 s."""
    monkeypatch.setattr(state_module, "PRESENCE_TTL", 1)
    monkeypatch.setattr(timers_module, "PRESENCE_HEARTBEAT", 0.2)


async def test_presence_is_refreshed_by_the_shared_timer(ws_connect, alice, bob, fast_presence):
    sockets = [await ws_connect(alice), await ws_connect(alice), await ws_connect(bob)]

    await asyncio.sleep(2)  # twice the entries' lifetime

    assert await _online(alice.pk) and await _online(bob.pk)
    assert _tasks_running(ConnectionTimers.beat) == 1  # one heartbeat for all three
    for ws in sockets:
        assert await ws.receive_nothing(timeout=0.1)


async def test_presence_expires_once_the_shared_timer_stops_refreshing_it(
    ws_connect, alice, fast_presence
):
    """What a killed worker leaves behind: entries nobody refreshes, which expire."""
    ws = await ws_connect(alice)
    connection_timers().forget(ws.connection_success["data"]["connectionId"])

    await asyncio.sleep(1.5)

    assert not await _online(alice.pk)


async def test_token_expiry_closes_via_the_shared_timer(ws_connect, alice, bob):
    expiring = [
        await ws_connect(token=_short_token(alice, 1)),
        await ws_connect(token=_short_token(bob, 1)),
    ]
    refreshed = await ws_connect(token=_short_token(alice, 1))
    reply = await request(refreshed, "auth:refresh", {"token": str(AccessToken.for_user(alice))})
    assert reply["event"] == "ack"

    for ws in expiring:
        frame = await ws.receive_json_from(timeout=5)
        assert frame["event"] == "error" and frame["data"]["code"] == "UNAUTHORIZED"
        assert (await ws.receive_output(timeout=5))["code"] == 4401
    assert await refreshed.receive_nothing(timeout=0.5)


async def test_a_closed_connection_is_removed_from_the_registry(ws_connect, alice):
    ws = await ws_connect(alice)
    connection_id = ws.connection_success["data"]["connectionId"]
    assert connection_id in connection_timers()

    await ws.disconnect()

    assert connection_id not in connection_timers()
    assert not await _online(alice.pk)


class _Connection:
    def __init__(self) -> None:
        self.expired = asyncio.Event()

    async def token_expired(self) -> None:
        self.expired.set()


async def test_a_new_deadline_replaces_the_old_and_none_cancels_it():
    timers = ConnectionTimers()
    moved, cancelled, kept = _Connection(), _Connection(), _Connection()
    now = time.time()
    timers.expire_at("moved", moved, now + 0.1)
    timers.expire_at("cancelled", cancelled, now + 0.1)
    timers.expire_at("kept", kept, now + 0.2)
    timers.expire_at("moved", moved, now + 0.4)
    timers.expire_at("cancelled", cancelled, None)

    await asyncio.wait_for(kept.expired.wait(), 2)
    assert not moved.expired.is_set() and not cancelled.expired.is_set()
    await asyncio.wait_for(moved.expired.wait(), 2)
    await asyncio.sleep(0.1)
    assert not cancelled.expired.is_set()
    assert not any(name in timers for name in ("moved", "cancelled", "kept"))


async def test_a_connection_closed_during_a_refresh_is_not_left_online(monkeypatch):
    """The refresh of a beat may reach Redis after the disconnect removed the entry: the
    beat then removes it again."""
    arrived, release, removed = asyncio.Event(), asyncio.Event(), []

    class SlowState:
        async def presence_refresh_many(self, entries):
            arrived.set()
            await release.wait()

        async def presence_remove_many(self, entries):
            removed.extend(entries)

    monkeypatch.setattr(timers_module, "get_state", SlowState)
    timers = ConnectionTimers()
    timers.presence_add(1, "stays")
    timers.presence_add(2, "leaves")
    beat = asyncio.create_task(timers.refresh_presence())
    await arrived.wait()
    timers.forget("leaves")
    release.set()
    await beat

    assert removed == [(2, "leaves")]
    timers.forget("stays")


async def test_a_user_is_connected_here_while_any_of_their_connections_is_registered():
    timers = ConnectionTimers()
    timers.presence_add(1, "first")
    timers.presence_add(1, "second")
    timers.presence_add(1, "second")  # registered again: still one connection

    timers.forget("first")
    assert timers.connected_here(1)
    timers.forget("second")
    timers.forget("second")
    assert not timers.connected_here(1)
    assert not timers.connected_here(2)


async def test_a_user_whose_worker_died_is_announced_offline_by_the_sweep(
    ws_connect, alice, bob, fast_presence
):
    """A killed worker closes nothing: once its entries expire, a live worker's heartbeat
    finds the user gone and tells the members."""
    room = await database_sync_to_async(
        lambda: session_create(creator=alice, title="general", member_ids=[bob.pk])
    )()
    a = await ws_connect(alice)
    await request(a, "session:join", {"sessionId": str(room.pk)})
    b = await ws_connect(bob)
    (online,) = (await next_event(a, "presence:changes"))["data"]["changes"]
    assert online["status"] == "online"
    connection_timers().forget(b.connection_success["data"]["connectionId"])  # as if killed

    (offline,) = (await next_event(a, "presence:changes"))["data"]["changes"]

    assert offline["user"]["id"] == bob.pk and offline["status"] == "offline"
    assert offline["lastSeenAt"]


async def test_a_close_waits_for_the_refresh_on_its_way(monkeypatch):
    """Else the refresh could put the closed connection's entry back after its removal,
    and a member reading presence meanwhile would count the user online."""
    arrived, release = asyncio.Event(), asyncio.Event()

    class SlowState:
        async def presence_refresh_many(self, entries):
            arrived.set()
            await release.wait()

        async def presence_remove_many(self, entries):
            pass

    monkeypatch.setattr(timers_module, "get_state", SlowState)
    timers = ConnectionTimers()
    timers.presence_add(1, "closing")
    beat = asyncio.create_task(timers.refresh_presence())
    await arrived.wait()
    timers.forget("closing")
    waiting = asyncio.create_task(timers.refreshed("closing"))
    await asyncio.sleep(0.05)
    assert not waiting.done()

    release.set()
    await asyncio.wait_for(waiting, 1)
    await beat
    await asyncio.wait_for(timers.refreshed("never-refreshed"), 0.1)


async def test_every_beat_runs_the_periodic_tasks_other_apps_registered(
    ws_connect, alice, fast_presence, monkeypatch
):
    from chat import extensions

    beats: list[float] = []

    async def failing() -> None:
        raise RuntimeError("a broken sweep")

    async def counting() -> None:
        beats.append(time.monotonic())

    monkeypatch.setattr(extensions, "periodic_tasks", [failing, counting])
    await ws_connect(alice)

    await asyncio.sleep(1)

    # One failing task doesn't keep the next from running, beat after beat.
    assert len(beats) >= 3
