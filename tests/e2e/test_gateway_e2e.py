"""The chat gateway on real daphne workers: what a client sees across processes."""

import asyncio
import json

import httpx
import pytest
import websockets

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
        for i in range(6):
            ws = (one, two)[i % 2]
            reply = await reply_to(ws, "session:join", {"sessionId": room}, ref=i)
            results.append(reply["event"])
        assert results == ["ack"] * 5 + ["error"]
    finally:
        await one.close()
        await two.close()


async def test_presence_is_shared_across_workers(two_workers):
    p = two_workers
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a = await p.connect(alice, 0)
    try:
        await reply_to(a, "session:join", {"sessionId": room})
        b = await p.connect(bob, 1)
        online = await next_event(a, "presence:update")
        with p.api(alice, 0) as http:
            presence = http.get(f"/api/chat/sessions/{room}/presence").json()
        statuses = {entry["user"]["id"]: entry["status"] for entry in presence}
        await b.close()
        offline = await next_event(a, "presence:update")

        assert online["data"]["status"] == "online" and online["data"]["user"]["id"] == bob["id"]
        assert statuses == {alice["id"]: "online", bob["id"]: "online"}
        assert offline["data"]["status"] == "offline"
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
    import subprocess
    import sys

    from .conftest import ROOT

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


def frames_written_direct(worker) -> float:
    """The worker's ``chat_ws_frames_direct_total``."""
    text = httpx.get(f"{worker.url}/metrics", timeout=10).text
    name = "chat_ws_frames_direct_total"
    return float(next(line for line in text.splitlines() if line.startswith(name)).split()[1])


async def test_broadcast_frames_reach_daphne_sockets_without_asgi_and_intact(two_workers):
    # Under daphne with the pub/sub layer (the shared configuration), a frame broadcast to
    # a room is written to each idle member's socket at once (chatproject.daphne_wire).
    p = two_workers
    alice, bob, carol = p.user("alice"), p.user("bob"), p.user("carol")
    room = p.room(alice, bob, carol)
    a, b, c = await p.connect(alice, 0), await p.connect(bob, 0), await p.connect(carol, 1)
    try:
        for ws in (a, b, c):
            await reply_to(ws, "session:join", {"sessionId": room})
        for ws in (a, b):  # carol's join reaches worker 0 through Redis: let it land first
            while (await next_event(ws, "user:joined"))["data"]["user"]["id"] != carol["id"]:
                pass
        before = [frames_written_direct(p.worker(i)) for i in (0, 1)]
        content = "é" * 200 + " long enough for a two-byte length"

        ack = await reply_to(a, "message:send", {"sessionId": room, "content": content})
        seen = [await next_event(ws, "message:new") for ws in (b, c)]

        assert [frame["data"]["message"]["id"] for frame in seen] == [ack["data"]["id"]] * 2
        assert [frame["data"]["message"]["content"] for frame in seen] == [content] * 2
        after = [frames_written_direct(p.worker(i)) for i in (0, 1)]
        # Worker 0: alice's and bob's copies (alice's while her send is still being
        # handled); worker 1: carol's, which came through Redis.
        assert (after[0] - before[0], after[1] - before[1]) == (2, 1)
    finally:
        for ws in (a, b, c):
            await ws.close()
