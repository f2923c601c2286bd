"""No user reads or writes a session, message, attachment or stream they are not a member
of, through any door, on real workers.

Alice and Bob share a room with a message (and a reply, a reaction, an attachment and an
assistant answer, all carrying a secret word). Mallory, a member of a room of her own only,
tries every REST endpoint, every ``/ws/chat/`` event, ``/api/stream`` with the room as its
``chatId``, ``/api/llm/query`` with it, ``/ws/ai/`` with it as a conversation, and the
assistant's ``search_messages`` tool from her own room. Each is refused (403/404, or a
FORBIDDEN/NOT_FOUND/VALIDATION_ERROR reply), no answer carries the secret, nothing of the
room ever reaches her open sockets, and nothing she tried changed it. A member removed from
the room stops receiving it on the socket they had joined it with.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

pytestmark = pytest.mark.e2e

SECRET = "zanzibar"
REFUSED_WS = {"FORBIDDEN", "NOT_FOUND", "VALIDATION_ERROR"}


async def reply_to(ws, event: str, data: dict, ref, seen: list | None = None) -> dict:
    await ws.send(json.dumps({"event": event, "data": data, "ref": ref}))
    async with asyncio.timeout(30):
        while True:
            frame = json.loads(await ws.recv())
            if frame["event"] in ("ack", "error") and frame.get("ref") == ref:
                return frame
            if seen is not None:
                seen.append(frame)


async def drain(ws, seconds: float) -> list[dict]:
    frames = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frames.append(json.loads(await ws.recv()))
    except TimeoutError:
        return frames


async def connect(p, user: dict, index: int = 0, path: str = "/ws/chat/"):
    ws = await websockets.connect(f"{p.ws_url(index, path)}?token={user['access']}")
    assert json.loads(await ws.recv())["event"] == "connection:success"
    return ws


@pytest.fixture
def world(rel_platform, ollama):
    """Alice's room with Bob, full of the secret; Mallory's own room."""
    p = rel_platform
    seeded = p.seed(3, [[0, 1], [2]])
    (alice, bob, mallory), (room, own) = seeded.users, seeded.rooms
    with p.api(alice) as http:
        message = http.post(
            "/api/chat/messages", json={"sessionId": room, "content": f"the {SECRET} plan"}
        ).json()
        reply = http.post(
            "/api/chat/messages",
            json={
                "sessionId": room,
                "content": f"{SECRET} reply",
                "parentMessageId": message["id"],
            },
        ).json()
        http.post(f"/api/chat/messages/{message['id']}/reactions", json={"emoji": "🔒"})
        attachment = http.post(
            f"/api/chat/messages/{message['id']}/attachments",
            files={"file": ("plan.txt", f"{SECRET} file".encode(), "text/plain")},
        )
        assert attachment.status_code == 201, attachment.text
    ollama.configure(reply=f"the {SECRET} answer", delay_ms=1)

    async def answer():
        ws = await connect(p, alice)
        try:
            await reply_to(ws, "session:join", {"sessionId": room}, "j")
            ack = await reply_to(ws, "stream:request", {"sessionId": room, "prompt": "go"}, "s")
            assert ack["event"] == "ack", ack
            async with asyncio.timeout(30):
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["event"] == "stream:complete":
                        return ack["data"]
        finally:
            await ws.close()

    stream = asyncio.run(answer())
    return {
        "p": p, "alice": alice, "bob": bob, "mallory": mallory, "room": room, "own": own,
        "message": message["id"], "reply": reply["id"], "attachment": attachment.json()["id"],
        "stream": stream["streamId"],
        "answer": stream["messageId"], "prompt": stream["userMessageId"],
    }  # fmt: skip


def rest_doors(w: dict) -> list[tuple[str, str, dict | None]]:
    room, message, attachment, stream = w["room"], w["message"], w["attachment"], w["stream"]
    return [
        ("GET", f"/api/chat/sessions/{room}", None),
        ("PATCH", f"/api/chat/sessions/{room}", {"title": "mine now"}),
        ("DELETE", f"/api/chat/sessions/{room}", None),
        ("POST", f"/api/chat/sessions/{room}/members", {"userId": w["mallory"]["id"]}),
        ("DELETE", f"/api/chat/sessions/{room}/members/{w['bob']['id']}", None),
        ("GET", f"/api/chat/sessions/{room}/messages", None),
        ("GET", f"/api/chat/sessions/{room}/messages?parentMessageId={message}", None),
        ("GET", f"/api/chat/sessions/{room}/search?query={SECRET}", None),
        ("GET", f"/api/chat/sessions/{room}/presence", None),
        ("POST", "/api/chat/messages", {"sessionId": room, "content": "let me in"}),
        ("GET", f"/api/chat/messages/{message}", None),
        ("PUT", f"/api/chat/messages/{message}", {"content": "defaced"}),
        ("DELETE", f"/api/chat/messages/{message}", None),
        ("GET", f"/api/chat/messages/{w['reply']}", None),
        ("GET", f"/api/chat/messages/{message}/reactions", None),
        ("POST", f"/api/chat/messages/{message}/reactions", {"emoji": "👀"}),
        ("GET", f"/api/chat/messages/{message}/thread", None),
        ("GET", f"/api/chat/messages/{message}/attachments", None),
        ("POST", f"/api/chat/messages/{message}/attachments",
         {"fileName": "x.txt", "fileUrl": "https://example.com/x", "mimeType": "text/plain"}),
        ("GET", f"/api/chat/attachments/{attachment}", None),
        ("DELETE", f"/api/chat/attachments/{attachment}", None),
        ("GET", f"/api/chat/attachments/{attachment}/download", None),
        ("GET", f"/api/chat/streams/{stream}/status", None),
        ("GET", f"/api/chat/streams/{stream}/metrics", None),
        ("GET", f"/api/chat/streams/{stream}/events", None),
        ("POST", "/api/stream",
         {"messages": [{"role": "user", "content": "hi"}], "model": "llama3.2", "chatId": room}),
        ("POST", "/api/llm/query", {"prompt": "what is the plan", "sessionId": room}),
        ("POST", f"/api/chat/messages/{w['answer']}/regenerate", {}),
        ("GET", f"/api/chat/messages/{w['answer']}/versions", None),
        ("POST", f"/api/chat/messages/{w['prompt']}/resend", {"content": "defaced"}),
    ]  # fmt: skip


def test_rest_doors_refuse_a_non_member(world):
    w, p = world, world["p"]
    outcomes = {}
    for index in range(len(p.workers)):
        with p.api(w["mallory"], index) as http:
            for method, path, body in rest_doors(w):
                response = http.request(method, path, json=body)
                outcomes[(index, method, path)] = response.status_code
                assert response.status_code in (403, 404), (method, path, response.text[:300])
                assert SECRET not in response.text, (method, path)
            sessions = http.get("/api/chat/sessions").json()
            assert [s["id"] for s in sessions] == [w["own"]]
    # Nothing Mallory tried changed the room.
    with p.api(w["alice"]) as http:
        session = http.get(f"/api/chat/sessions/{w['room']}").json()
        history = http.get(f"/api/chat/sessions/{w['room']}/messages").json()
        attachments = http.get(f"/api/chat/messages/{w['message']}/attachments").json()
    assert session["title"] == "reliability"
    assert sorted(m["id"] for m in session["members"]) == sorted([w["alice"]["id"], w["bob"]["id"]])
    first = next(m for m in history["messages"] if m["id"] == w["message"])
    assert first["content"] == f"the {SECRET} plan" and not first["isDeleted"]
    assert [r["emoji"] for r in first["reactions"]] == ["🔒"]
    assert len(attachments) == 1
    statuses = sorted(set(outcomes.values()))
    print(f"\nREST doors refused: {len(outcomes)} requests, statuses {statuses}")


def ws_attempts(w: dict) -> list[tuple[str, dict]]:
    room, message = w["room"], w["message"]
    return [
        ("session:join", {"sessionId": room}),
        ("session:join", {"sessionId": room, "lastSeq": 0}),
        ("message:send", {"sessionId": room, "content": "let me in"}),
        ("message:send", {"sessionId": w["own"], "content": "x", "parentMessageId": message}),
        ("message:edit", {"messageId": message, "content": "defaced"}),
        ("message:delete", {"messageId": message}),
        ("message:delivered", {"messageId": message}),
        ("message:seen", {"messageId": message}),
        ("message:reaction", {"messageId": message, "emoji": "👀"}),
        ("typing:start", {"sessionId": room}),
        ("typing:stop", {"sessionId": room}),
        ("stream:request", {"sessionId": room, "prompt": f"tell me the {SECRET}"}),
        ("stream:request", {"sessionId": w["own"], "prompt": "x", "parentMessageId": message}),
        ("stream:stop", {"streamId": w["stream"]}),
        ("stream:regenerate", {"messageId": w["answer"]}),
        ("message:resend", {"messageId": w["prompt"], "content": "defaced"}),
    ]


async def test_websocket_doors_refuse_a_non_member_and_leak_nothing(world, ollama):
    w, p = world, world["p"]
    alice_ws = await connect(p, w["alice"], 0)
    spies = [await connect(p, w["mallory"], i) for i in range(len(p.workers))]
    ai = await connect(p, w["mallory"], 0, "/ws/ai/")
    seen: list[dict] = []
    try:
        await reply_to(alice_ws, "session:join", {"sessionId": w["room"]}, "j")
        replies = {}
        for spy in spies:
            for n, (event, data) in enumerate(ws_attempts(w)):
                reply = await reply_to(spy, event, data, n, seen)
                replies[(event, json.dumps(data))] = reply
                assert reply["event"] == "error", (event, data, reply)
                assert reply["data"]["code"] in REFUSED_WS, (event, reply)
                assert SECRET not in json.dumps(reply)
        # /ws/ai/ with the room as a conversation, both seeds' ways.
        for n, (event, data) in enumerate([
            ("prompt", {"thread": w["room"], "message": {"role": "user", "content": "hi"}}),
            ("chat:start", {"message": "hi", "conversationId": w["room"]}),
        ]):  # fmt: skip
            reply = await reply_to(ai, event, data, f"ai{n}", seen)
            assert reply["event"] == "error" and reply["data"]["code"] in REFUSED_WS, reply
        # The room keeps talking; the spies hear nothing of it.
        with p.api(w["alice"]) as http:
            http.post("/api/chat/messages", json={"sessionId": w["room"], "content": SECRET})
        await reply_to(alice_ws, "typing:start", {"sessionId": w["room"]}, "t")
        for spy in spies:
            seen += await drain(spy, 1.5)
        seen += await drain(ai, 0.5)
    finally:
        for ws in (alice_ws, ai, *spies):
            await ws.close()
    leaked = [f for f in seen if SECRET in json.dumps(f) or w["room"] in json.dumps(f)]
    assert not leaked, leaked[:3]
    print(f"\nWebSocket doors refused: {len(replies) + 2} attempts; spies got {len(seen)} frames")


async def test_the_assistants_search_tool_sees_only_its_own_room(world, ollama):
    w, p = world, world["p"]
    ollama.reset()
    ollama.configure(tool_calls=[{"name": "search_messages", "arguments": {"query": SECRET}}])
    ws = await connect(p, w["mallory"])
    try:
        await reply_to(ws, "session:join", {"sessionId": w["own"]}, "j")
        ack = await reply_to(ws, "stream:request", {"sessionId": w["own"], "prompt": "look"}, "s")
        assert ack["event"] == "ack", ack
        frames = []
        async with asyncio.timeout(30):
            while not frames or frames[-1]["event"] not in ("stream:complete", "stream:error"):
                frames.append(json.loads(await ws.recv()))
    finally:
        await ws.close()
    tools = [f["data"] for f in frames if f["event"] == "stream:tool"]
    assert tools and tools[0]["name"] == "search_messages"
    assert json.loads(tools[0]["result"]) == {"total": 0, "results": []}
    assert SECRET not in frames[-1]["data"].get("content", "")


async def test_a_removed_member_stops_hearing_the_room(world):
    w, p = world, world["p"]
    bob_ws = await connect(p, w["bob"], len(p.workers) - 1)
    try:
        joined = await reply_to(bob_ws, "session:join", {"sessionId": w["room"]}, "j")
        assert joined["event"] == "ack"
        with p.api(w["alice"]) as http:
            http.post("/api/chat/messages", json={"sessionId": w["room"], "content": "before"})
            assert (
                http.delete(f"/api/chat/sessions/{w['room']}/members/{w['bob']['id']}").status_code
                == 204
            )
            await asyncio.sleep(1)
            http.post("/api/chat/messages", json={"sessionId": w["room"], "content": SECRET})
        frames = await drain(bob_ws, 2)
        typing = await reply_to(bob_ws, "typing:start", {"sessionId": w["room"]}, "t")
        send = await reply_to(
            bob_ws, "message:send", {"sessionId": w["room"], "content": "still here?"}, "m"
        )
    finally:
        await bob_ws.close()
    contents = [f["data"]["message"]["content"] for f in frames if f["event"] == "message:new"]
    assert "before" in contents
    assert SECRET not in json.dumps(frames), [f["event"] for f in frames]
    assert typing["event"] == "error" and send["event"] == "error"


def test_unauthenticated_doors_refuse(world):
    w, p = world, world["p"]
    with httpx.Client(base_url=p.url(0), timeout=30) as http:
        for method, path, body in rest_doors(w):
            response = http.request(method, path, json=body)
            assert response.status_code == 401, (method, path, response.status_code)
