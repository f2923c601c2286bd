"""The chat gateway on real daphne workers: what a client sees across processes."""

import asyncio
import json
import subprocess
import sys

import httpx
import pytest
import websockets

from .conftest import ROOT, start_worker, stop_worker

pytestmark = pytest.mark.e2e


async def reply_to(ws, event: str, data: dict, ref="r"):
    await ws.send(json.dumps({"event": event, "data": data, "ref": ref}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame["event"] in ("ack", "error") and frame.get("ref") == ref:
            return frame


async def next_event(ws, event: str, within: float = 10):
    async with asyncio.timeout(within):
        while True:
            frame = json.loads(await ws.recv())
            if frame["event"] == event:
                return frame


async def test_a_message_sent_on_one_worker_reaches_a_client_of_the_other(two_workers):
    p = two_workers
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a, b = await p.connect(alice, 0), await p.connect(bob, 1)
    try:
        await reply_to(a, "session:join", {"sessionId": room})
        await reply_to(b, "session:join", {"sessionId": room})

        ack = await reply_to(a, "message:send", {"sessionId": room, "content": "over ws"})
        over_ws = await next_event(b, "message:new")
        with p.api(alice, 0) as http:
            http.post("/api/chat/messages", json={"sessionId": room, "content": "over rest"})
        over_rest = await next_event(b, "message:new")

        assert over_ws["data"]["message"]["id"] == ack["data"]["id"]
        assert (over_ws["seq"], over_rest["seq"]) == (1, 2)
        assert over_rest["data"]["message"]["content"] == "over rest"
    finally:
        await a.close()
        await b.close()


async def test_throttles_hold_across_workers(two_workers):
    p = two_workers
    alice = p.user("alice")
    room = p.room(alice)
    one, two = await p.connect(alice, 0), await p.connect(alice, 1)
    try:
        results = []
        for i in range(31):
            ws = (one, two)[i % 2]
            data = {"sessionId": room, "content": f"m{i}"}
            results.append((await reply_to(ws, "message:send", data, ref=i))["event"])
        assert results == ["ack"] * 30 + ["error"]
    finally:
        await one.close()
        await two.close()


async def test_the_join_limit_is_per_connection_and_new_connections_are_limited_across_workers(
    two_workers,
):
    p = two_workers
    alice = p.user("alice")
    room = p.room(alice)
    one = await p.connect(alice, 0)
    try:
        joins = [(await reply_to(one, "session:join", {"sessionId": room}, ref=i))["event"]
                 for i in range(6)]  # fmt: skip
        assert joins == ["ack"] * 5 + ["error"]
        for i in range(29):  # with ``one``: 30 new connections this minute, on both workers
            other = await p.connect(alice, i)
            if i == 0:  # a new connection has joins of its own
                joined = await reply_to(other, "session:join", {"sessionId": room})
                assert joined["event"] == "ack"
            await other.close()

        refused = await websockets.connect(f"{p.worker(1).ws_url}?token={alice['access']}")
        error = json.loads(await refused.recv())
        with pytest.raises(websockets.ConnectionClosed):
            await refused.recv()
        assert error["event"] == "error" and error["data"]["code"] == "RATE_LIMITED"
        assert error["data"]["retryAfter"] > 0 and refused.close_code == 4429
    finally:
        await one.close()


async def test_presence_is_shared_across_workers(two_workers):
    p = two_workers
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a = await p.connect(alice, 0)
    try:
        await reply_to(a, "session:join", {"sessionId": room})
        b = await p.connect(bob, 1)
        (online,) = (await next_event(a, "presence:changes"))["data"]["changes"]
        with p.api(alice, 0) as http:
            presence = http.get(f"/api/chat/sessions/{room}/presence").json()
        statuses = {entry["user"]["id"]: entry["status"] for entry in presence}
        await b.close()
        (offline,) = (await next_event(a, "presence:changes"))["data"]["changes"]

        assert online["status"] == "online" and online["user"]["id"] == bob["id"]
        assert statuses == {alice["id"]: "online", bob["id"]: "online"}
        assert offline["status"] == "offline" and offline["user"]["id"] == bob["id"]
    finally:
        await a.close()


async def test_offline_queue_is_delivered_on_the_other_worker(two_workers):
    p = two_workers
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    with p.api(alice, 0) as http:
        for text in ("one", "two"):
            http.post("/api/chat/messages", json={"sessionId": room, "content": text})
    b = await p.connect(bob, 1)
    try:
        queued = [json.loads(await asyncio.wait_for(b.recv(), 10)) for _ in range(2)]
        assert [(f["event"], f["seq"]) for f in queued] == [("message:new", 1), ("message:new", 2)]
    finally:
        await b.close()


async def test_join_with_last_seq_replays_everything_missed_in_order(platform):
    p = platform
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    with p.api(alice) as http:
        first = http.post("/api/chat/messages", json={"sessionId": room, "content": "a"}).json()
        http.post("/api/chat/messages", json={"sessionId": room, "content": "b"})
        http.put(f"/api/chat/messages/{first['id']}", json={"content": "a2"})
        http.post(f"/api/chat/messages/{first['id']}/reactions", json={"emoji": "👍"})
        http.delete(f"/api/chat/messages/{first['id']}")
    b = await p.connect(bob, 1)
    try:
        joined = await reply_to(b, "session:join", {"sessionId": room, "lastSeq": 1})
        events = [(f["seq"], f["event"]) for f in joined["data"]["missed"]]
        assert events == [
            (2, "message:new"),
            (3, "message:edited"),
            (4, "message:reaction:update"),
            (5, "message:deleted"),
        ]
        assert joined["data"]["lastSeq"] == 5
    finally:
        await b.close()


async def test_bad_frames_leave_the_socket_usable_on_a_real_server(platform):
    p = platform
    alice = p.user("alice")
    ws = await p.connect(alice)
    try:
        for raw in ("{", '"text"', '{"event": 5}', '{"event": "what"}'):
            await ws.send(raw)
            error = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert error["event"] == "error"
        await ws.send(b"\x00\x01")
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["data"]["code"] == "BAD_FRAME"
        assert (await reply_to(ws, "ping", {}))["event"] == "ack"
    finally:
        await ws.close()


async def test_a_frame_over_64_kib_closes_with_1009_on_daphne(platform):
    p = platform
    ws = await p.connect(p.user("alice"))
    await ws.send(json.dumps({"event": "ping", "data": {"pad": "x" * 70_000}}))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd.code == 1009


async def test_uvicorn_serves_the_gateway_and_the_app_enforces_64_kib(platform, uvicorn_worker):
    p = platform
    alice = p.user("alice")
    url = uvicorn_worker.url.replace("http://", "ws://") + f"/ws/chat/?token={alice['access']}"
    ws = await websockets.connect(url, max_size=2**22)
    assert json.loads(await ws.recv())["event"] == "connection:success"
    assert (await reply_to(ws, "ping", {}))["event"] == "ack"
    await ws.send(json.dumps({"event": "ping", "data": {"pad": "x" * 70_000}}))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd.code == 1009


async def test_a_foreign_origin_is_refused_with_403(platform):
    p = platform
    alice = p.user("alice")
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(
            f"{p.worker(0).ws_url}?token={alice['access']}", origin="https://evil.example"
        )
    assert refused.value.response.status_code == 403


def test_rest_refuses_without_credentials_on_a_real_server(platform):
    response = httpx.get(f"{platform.worker(0).url}/api/chat/sessions", timeout=10)
    assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"


def _run_in_platform(platform, code: str) -> None:
    """Run Python in a separate ``manage.py shell`` process on the platform's database."""
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env=platform.env, check=True, timeout=60,
    )  # fmt: skip


async def test_a_ban_closes_the_users_sockets_on_every_worker(two_workers):
    p = two_workers
    mallory = p.user("mallory")
    sockets = [await p.connect(mallory, i) for i in range(len(p.workers))]
    await asyncio.to_thread(
        _run_in_platform,
        p,
        "from accounts.models import User; from accounts.services import user_deactivate; "
        f"user_deactivate(user=User.objects.get(pk={mallory['id']}))",
    )
    for ws in sockets:
        error = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert error["data"]["code"] == "FORBIDDEN"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 15)
        assert closed.value.rcvd.code == 4403
    again = await websockets.connect(f"{p.worker(0).ws_url}?token={mallory['access']}")
    assert json.loads(await asyncio.wait_for(again.recv(), 10))["data"]["code"] == "UNAUTHORIZED"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(again.recv(), 10)
    assert closed.value.rcvd.code == 4401


async def test_a_senders_own_message_new_comes_after_the_ack_on_daphne(platform):
    # One message at a time per socket (Channels): the frames a request causes wait until
    # its reply has gone out, on daphne with the configured layer as everywhere else.
    p = platform
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a, b = await p.connect(alice, 0), await p.connect(bob, 0)
    try:
        for ws in (a, b):
            await reply_to(ws, "session:join", {"sessionId": room})
        while (await next_event(a, "user:joined"))["data"]["user"]["id"] != bob["id"]:
            pass
        for i in range(10):
            data = {"sessionId": room, "content": f"m{i}", "clientId": f"c{i}"}
            await a.send(json.dumps({"event": "message:send", "data": data, "ref": i}))
        seen: list[tuple[str, str]] = []  # (event, clientId) in arrival order
        async with asyncio.timeout(20):
            while sum(event == "message:new" for event, _ in seen) < 10:
                frame = json.loads(await a.recv())
                if frame["event"] == "ack":
                    seen.append(("ack", frame["data"]["clientId"]))
                elif frame["event"] == "message:new":
                    seen.append(("message:new", frame["data"]["message"]["clientId"]))

        for i in range(10):
            assert seen.index(("ack", f"c{i}")) < seen.index(("message:new", f"c{i}")), seen
        for_bob = [(await next_event(b, "message:new"))["data"]["message"] for _ in range(10)]
        assert [message["content"] for message in for_bob] == [f"m{i}" for i in range(10)]
    finally:
        await a.close()
        await b.close()


BROADCAST_FROM_ANOTHER_PROCESS = """
import asyncio, os, uuid
from django.conf import settings
from django.utils.module_loading import import_string
from chat.events import group_for_session

layer_settings = settings.CHANNEL_LAYERS["default"]
layer = import_string(layer_settings["BACKEND"])(**layer_settings["CONFIG"])
group = group_for_session(uuid.UUID(os.environ["BROADCAST_ROOM"]))


async def main():
    await layer.group_send(group, {"type": "chat.frame", "text": os.environ["BROADCAST_TEXT"]})
    await layer.flush()

asyncio.run(main())
"""


async def test_another_process_broadcasts_to_a_room_through_a_plain_channels_redis_layer(
    two_workers,
):
    # docs/websocket.md, "Broadcasting from another process": a stock channels-redis layer
    # with the platform's backend, hosts and prefix, and a chat.frame message to the room.
    p = two_workers
    alice, bob, carol = p.user("alice"), p.user("bob"), p.user("carol")
    room = p.room(alice, bob, carol)
    sockets = [await p.connect(alice, 0), await p.connect(bob, 0), await p.connect(carol, 1)]
    try:
        for ws in sockets:
            await reply_to(ws, "session:join", {"sessionId": room})
        for ws in sockets[:2]:  # carol's join reaches worker 0 through Redis: let it land
            while (await next_event(ws, "user:joined"))["data"]["user"]["id"] != carol["id"]:
                pass
        text = json.dumps({"event": "notice", "data": {"sessionId": room, "note": "from a job"}})

        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "manage.py", "shell", "-c", BROADCAST_FROM_ANOTHER_PROCESS],
            cwd=ROOT, env={**p.env, "BROADCAST_ROOM": room, "BROADCAST_TEXT": text},
            check=True, timeout=60,
        )  # fmt: skip

        received = [await next_event(ws, "notice") for ws in sockets]
        assert received == [json.loads(text)] * 3
    finally:
        for ws in sockets:
            await ws.close()


async def test_another_port_of_an_allowed_host_is_refused_and_the_sites_own_origin_is_not(
    platform,
):
    p = platform
    alice = p.user("alice")
    url = f"{p.worker(0).ws_url}?token={alice['access']}"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url, origin="http://127.0.0.1:9999")
    assert refused.value.response.status_code == 403

    ws = await websockets.connect(url, origin=p.worker(0).url)
    try:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["event"] == "connection:success"
    finally:
        await ws.close()


@pytest.mark.parametrize(
    "down",
    [
        # A database file that can't be opened fails at once (PostgreSQL's pool would wait
        # for a connection longer than daphne lets a handshake take).
        {"DATABASE_URL": "sqlite:////nonexistent-chat-e2e/db.sqlite3"},
        {"REDIS_URL": "redis://127.0.0.1:1/0", "CHANNEL_LAYER": "pubsub"},
    ],
    ids=["database", "redis"],
)
async def test_a_backend_down_at_the_handshake_is_an_error_and_4503_not_a_500(platform, down):
    p = platform
    alice = p.user("alice")
    worker = start_worker({**p.env, **down})
    try:
        async with websockets.connect(
            worker.ws_url + f"?token={alice['access']}", open_timeout=20
        ) as ws:
            error = json.loads(await asyncio.wait_for(ws.recv(), 20))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 20)
        assert error["event"] == "error" and error["data"]["code"] == "INTERNAL"
        assert error["data"]["retryAfter"] == 1
        assert closed.value.rcvd.code == 4503
    finally:
        stop_worker(worker)
