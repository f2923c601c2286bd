"""No frame the server sends is over the 256 KiB cap the README serves daphne with
(``--websocket-max-message-size 262144``), on real workers: a long catch-up pages with
``hasMore``, an oversized attachment ``metadata`` is refused instead of closing every
member's socket, an offline queue larger than one frame arrives whole, and a 32,768-token
multibyte answer completes for every listener.

The clients here refuse any frame over the cap themselves (``max_size``), so a frame the
server should not have sent fails the test on the client side too.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

pytestmark = pytest.mark.e2e

CAP = 262144
WITHIN_S = 60


async def connect(platform, user: dict, index: int = 0):
    """A socket that accepts no frame over the cap; returns it once connected."""
    ws = await websockets.connect(
        f"{platform.worker(index).ws_url}?token={user['access']}", max_size=CAP
    )
    first = json.loads(await ws.recv())
    assert first["event"] == "connection:success", first
    return ws


async def request(ws, event: str, data: dict, ref="r") -> tuple[dict, list[dict], int]:
    """Send a frame; its reply, the frames that came before it, and the reply's size."""
    await ws.send(json.dumps({"event": event, "data": data, "ref": ref}))
    before = []
    async with asyncio.timeout(WITHIN_S):
        while True:
            raw = await ws.recv()
            frame = json.loads(raw)
            if frame["event"] in ("ack", "error") and frame.get("ref") == ref:
                return frame, before, len(raw.encode())
            before.append(frame)


async def post_messages(platform, user: dict, room: str, count: int, content: str) -> None:
    async with httpx.AsyncClient(
        base_url=platform.worker(0).url,
        headers={"Authorization": f"Bearer {user['access']}"},
        timeout=30,
    ) as http:
        for n in range(count):
            sent = await http.post(
                "/api/chat/messages", json={"sessionId": room, "content": f"{content} {n}"}
            )
            assert sent.status_code == 201, sent.text


async def test_catching_up_on_520_messages_in_a_room_of_21_pages_with_has_more(platform):
    p = platform
    owner, *others = [p.user("m") for _ in range(21)]
    room = p.room(owner, *others)
    # 26 each: under the 30 a minute a member may send. One after another: SQLite takes one
    # writer at a time.
    for user in others:
        await post_messages(p, user, room, 26, "bulk 3.14")

    ws = await connect(p, owner)
    try:
        seqs, pages, last_seq = [], [], 0
        while True:
            reply, _, size = await request(
                ws, "session:join", {"sessionId": room, "lastSeq": last_seq}, ref=len(pages)
            )
            assert reply["event"] == "ack", reply
            pages.append((size, len(reply["data"]["missed"]), reply["data"]["hasMore"]))
            seqs += [frame["seq"] for frame in reply["data"]["missed"]]
            last_seq = seqs[-1]
            if not reply["data"]["hasMore"]:
                break
        pong, _, _ = await request(ws, "ping", {}, ref="ping")
    finally:
        await ws.close()

    assert seqs == list(range(1, 521))
    assert len(pages) >= 2, pages
    assert all(size <= CAP for size, _, _ in pages), pages
    assert pong["event"] == "ack"


def link_with_metadata(metadata: dict) -> dict:
    return {
        "fileName": "page.html",
        "fileUrl": "https://example.com/page",
        "mimeType": "text/html",
        "metadata": metadata,
    }


async def test_oversized_metadata_is_refused_and_no_member_loses_their_socket(platform):
    p = platform
    alice, bob, carol = p.user("alice"), p.user("bob"), p.user("carol")
    room = p.room(alice, bob, carol)
    sockets = [await connect(p, user, n) for n, user in enumerate((alice, bob, carol))]
    try:
        for ws in sockets:
            await request(ws, "session:join", {"sessionId": room})
        with p.api(alice) as http:
            message = http.post("/api/chat/messages", json={"sessionId": room, "content": "x"})
            huge = {f"key{n}": "v" * 1000 for n in range(300)}
            refused = http.post(
                f"/api/chat/messages/{message.json()['id']}/attachments",
                json=link_with_metadata(huge),
            )
            kept = http.post(
                f"/api/chat/messages/{message.json()['id']}/attachments",
                json=link_with_metadata({"title": "A page", "size": {"w": 1, "h": 2}}),
            )

        replies = [(await request(ws, "ping", {}, ref="ping"))[0] for ws in sockets]
        rejoin, _, size = await request(
            sockets[1], "session:join", {"sessionId": room, "lastSeq": 0}, ref="rejoin"
        )
    finally:
        for ws in sockets:
            await ws.close()

    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "VALIDATION_ERROR"
    assert "metadata" in refused.json()["details"]
    assert kept.status_code == 201, kept.text
    assert [reply["event"] for reply in replies] == ["ack"] * 3
    assert rejoin["event"] == "ack" and size <= CAP
    assert [frame["event"] for frame in rejoin["data"]["missed"]] == [
        "message:new",
        "message:edited",
    ]


async def test_an_offline_queue_larger_than_a_frame_arrives_whole_and_is_cleared(platform):
    p = platform
    alice, carol, bob = p.user("alice"), p.user("carol"), p.user("bob")
    room = p.room(alice, carol, bob)
    long_text = "q" * 9000
    # 35 messages of 9,000 characters: more than 256 KiB queued for bob, who is away.
    await post_messages(p, alice, room, 20, long_text)
    with p.api(alice) as http:
        first = http.get(f"/api/chat/sessions/{room}/messages?limit=1&afterSeq=0").json()
        attack = http.post(
            f"/api/chat/messages/{first['messages'][0]['id']}/attachments",
            json=link_with_metadata({f"key{n}": "v" * 1000 for n in range(300)}),
        )
    await post_messages(p, carol, room, 15, long_text)

    ws = await connect(p, bob, 1)
    try:
        pong, queued, _ = await request(ws, "ping", {}, ref="after-queue")
    finally:
        await ws.close()
    again = await connect(p, bob)
    try:
        second_pong, queued_again, _ = await request(again, "ping", {}, ref="again")
    finally:
        await again.close()

    assert attack.status_code == 400, attack.text
    assert pong["event"] == "ack"
    assert [frame["seq"] for frame in queued] == list(range(1, 36))
    assert all(frame["event"] == "message:new" for frame in queued)
    assert second_pong["event"] == "ack"
    assert queued_again == [], "delivered frames leave the queue"


async def test_a_32768_token_multibyte_answer_completes_for_every_listener(platform):
    p = platform
    p.ollama.reset()
    p.ollama.configure(reply="漢字ü😀 " * 8, num_tokens=32768)
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a, b = await connect(p, alice, 0), await connect(p, bob, 1)
    try:
        await request(a, "session:join", {"sessionId": room})
        await request(b, "session:join", {"sessionId": room})
        ack, early, _ = await request(
            a,
            "stream:request",
            {"sessionId": room, "prompt": "write at length", "config": {"maxTokens": 32768}},
        )
        stream_id = ack["data"]["streamId"]

        async def until_complete(ws, frames):
            async with asyncio.timeout(WITHIN_S * 2):
                while True:
                    frame = json.loads(await ws.recv())
                    frames.append(frame)
                    if ended_and_saved(frames, stream_id):
                        return frames

        heard_a, heard_b = await asyncio.gather(until_complete(a, early), until_complete(b, []))
    finally:
        await a.close()
        await b.close()
        p.ollama.reset()
    with p.api(bob) as http:
        saved = http.get(f"/api/chat/messages/{ack['data']['messageId']}").json()

    assert len(saved["content"].split()) == 32768
    assert len(saved["content"].encode()) > CAP
    for heard in (heard_a, heard_b):
        chunks = [
            f["data"]
            for f in heard
            if f["event"] == "stream:chunk" and f["data"]["streamId"] == stream_id
        ]
        assert [c["index"] for c in chunks] == list(range(len(chunks)))
        assert "".join(c["delta"] for c in chunks) == saved["content"]
        assert chunks[-1]["isComplete"] and chunks[-1]["contentOmitted"] is True
        assert "content" not in chunks[-1]
        (complete,) = [f["data"] for f in heard if f["event"] == "stream:complete"]
        assert complete["contentOmitted"] is True and "content" not in complete
        edited = [f["data"]["message"] for f in heard if f["event"] == "message:edited"]
        assert edited[-1]["contentOmitted"] is True
        assert edited[-1]["metadata"]["status"] == "completed"


def ended_and_saved(frames: list[dict], stream_id: str) -> bool:
    """Whether the stream's ``stream:complete`` and its message's final ``message:edited``
    have both arrived."""
    events = {f["event"] for f in frames if f["data"].get("streamId") == stream_id}
    saved = any(
        f["event"] == "message:edited"
        and f["data"]["message"]["metadata"].get("streamId") == stream_id
        and f["data"]["message"]["metadata"].get("status") == "completed"
        for f in frames
    )
    return "stream:complete" in events and saved
