"""Ollama misbehaving, through the emulator, on real workers: a stall, a connection reset
mid-answer, an answer without its final line, an error line, and a 503. Each ends the
stream with exactly one ``stream:error`` (``LLM_UNAVAILABLE``), the part written so far is
kept in the assistant's message (status ``failed``), and the same socket goes on working:
it answers a ping and streams the next answer whole.

A client hanging up mid-stream: on ``POST /api/stream`` (the answer lives in the request)
the request to Ollama is closed within 2 s and the answer so far is saved as stopped; in a
room, the stream goes on to its end (CONTRACT: "A stream goes on when its requester
disconnects") and closes its Ollama request when done.

The workers run with ``OLLAMA_READ_TIMEOUT=3`` (conftest), so a stall fails in ~3 s.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from .conftest import tracebacks

pytestmark = pytest.mark.e2e

WITHIN_S = 30
FINAL = ("stream:complete", "stream:stopped", "stream:error")
REPLY = "one two three four five six seven eight nine ten eleven twelve"
FAULTS = ("stall", "cut", "no_done", "error_line", "http_503")


async def request(ws, event: str, data: dict, ref) -> tuple[dict, list[dict]]:
    """Send a frame; its reply and the frames that came before it."""
    await ws.send(json.dumps({"event": event, "data": data, "ref": ref}))
    before = []
    async with asyncio.timeout(WITHIN_S):
        while True:
            frame = json.loads(await ws.recv())
            if frame["event"] in ("ack", "error") and frame.get("ref") == ref:
                return frame, before
            before.append(frame)


async def until_end(ws, stream_id: str, frames: list[dict]) -> list[dict]:
    async with asyncio.timeout(WITHIN_S):
        while not any(f["event"] in FINAL and f["data"].get("streamId") == stream_id
                      for f in frames):  # fmt: skip
            frames.append(json.loads(await ws.recv()))
    return [f for f in frames if f["data"].get("streamId") == stream_id]


async def stream(ws, room: str, ref) -> tuple[dict, list[dict]]:
    ack, before = await request(ws, "stream:request", {"sessionId": room, "prompt": "go"}, ref)
    assert ack["event"] == "ack", ack
    return ack["data"], await until_end(ws, ack["data"]["streamId"], before)


async def test_every_ollama_fault_ends_the_stream_with_an_error_and_keeps_the_part(
    rel_platform, ollama
):
    p = rel_platform
    seeded = await asyncio.to_thread(p.seed, 1, [[0]])
    user, room = seeded.users[0], seeded.rooms[0]
    mark = p.log_mark()
    results = {}
    async with websockets.connect(f"{p.ws_url(0)}?token={user['access']}") as ws:
        assert json.loads(await ws.recv())["event"] == "connection:success"
        await request(ws, "session:join", {"sessionId": room}, "join")
        for n, fault in enumerate(FAULTS):
            ollama.reset()
            ollama.configure(reply=REPLY, delay_ms=5, failure=fault, fail_after=3)
            stalled = fault == "stall"
            started = time.monotonic()
            ids, frames = await stream(ws, room, f"s{n}")
            took = time.monotonic() - started
            ends = [f for f in frames if f["event"] in FINAL]
            deltas = "".join(f["data"]["delta"] for f in frames if f["event"] == "stream:chunk")
            with p.api(user) as http:
                saved = http.get(f"/api/chat/messages/{ids['messageId']}").json()
                status = http.get(f"/api/chat/streams/{ids['streamId']}/status").json()
            if stalled:
                # The worker gave up on the silent Ollama and closed that request.
                await ollama.await_event("disconnect", within=5)
            pong, _ = await request(ws, "ping", {}, f"p{n}")
            results[fault] = {
                "took_s": round(took, 2),
                "end": [(f["event"], f["data"].get("code")) for f in ends],
                "kept": saved["content"],
                "status": (saved["metadata"].get("status"), status["status"]),
            }
            assert [f["event"] for f in ends] == ["stream:error"], results[fault]
            assert ends[0]["data"]["code"] == "LLM_UNAVAILABLE", ends[0]
            assert saved["content"] == deltas, results[fault]
            expected = "" if fault == "http_503" else "one two three"
            assert deltas == expected, results[fault]
            assert results[fault]["status"] == ("failed", "failed")
            assert pong["event"] == "ack"
        # The socket streams the next answer whole.
        ollama.reset()
        ollama.configure(reply="all good", delay_ms=5)
        _, frames = await stream(ws, room, "healthy")
        assert frames[-1]["event"] == "stream:complete"
        assert frames[-1]["data"]["content"] == "all good"
    print(f"\nollama faults: {results}")
    # The stall ends by the read timeout, and its request to Ollama is closed.
    assert 2.5 <= results["stall"]["took_s"] <= 20
    assert not tracebacks(p.log_since(mark))


async def test_hanging_up_on_api_stream_closes_the_ollama_request_within_2_s(rel_platform, ollama):
    p = rel_platform
    seeded = await asyncio.to_thread(p.seed, 1, [[0]])
    user, room = seeded.users[0], seeded.rooms[0]
    ollama.configure(num_tokens=400, delay_ms=20)
    mark = p.log_mark()
    body = {"messages": [{"role": "user", "content": "go"}], "model": "llama3.2", "chatId": room}
    headers = {"Authorization": f"Bearer {user['access']}"}
    received = []
    async with httpx.AsyncClient(base_url=p.url(0), timeout=30) as http:
        async with http.stream("POST", "/api/stream", json=body, headers=headers) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    received.append(line[7:])
                if received.count("message-chunk") >= 3:
                    break
        hung_up_at = time.time()
    gone = await ollama.await_event("disconnect", within=10)
    closed_after = gone["at"] - hung_up_at
    assert gone["tokens_sent"] < 400
    assert ollama.events("complete") == []
    # The answer so far is saved as stopped, once the worker has noticed.
    async with asyncio.timeout(10):
        while True:
            with p.api(user) as http:
                history = http.get(f"/api/chat/sessions/{room}/messages").json()["messages"]
            answer = next((m for m in history if m["role"] == "assistant"), None)
            if answer and answer["metadata"].get("status") == "stopped":
                break
            await asyncio.sleep(0.2)
    log = p.log_since(mark)
    print(f"\nSSE hang-up: upstream closed {closed_after:.2f} s after the client hung up, "
          f"after {gone['tokens_sent']} tokens; kept {len(answer['content'])} chars")  # fmt: skip
    assert closed_after <= 2.0
    assert answer["content"]
    assert "the client hung up" in log
    assert not tracebacks(log)


async def test_a_room_stream_goes_on_when_its_requester_disconnects(rel_platform, ollama):
    p = rel_platform
    seeded = await asyncio.to_thread(p.seed, 2, [[0, 1]])
    (alice, bob), room = seeded.users, seeded.rooms[0]
    ollama.configure(reply=REPLY, delay_ms=40)
    mark = p.log_mark()
    a = await websockets.connect(f"{p.ws_url(0)}?token={alice['access']}")
    b = await websockets.connect(f"{p.ws_url(1)}?token={bob['access']}")
    try:
        for ws in (a, b):
            assert json.loads(await ws.recv())["event"] == "connection:success"
            await request(ws, "session:join", {"sessionId": room}, "join")
        ack, _ = await request(a, "stream:request", {"sessionId": room, "prompt": "go"}, "s")
        stream_id = ack["data"]["streamId"]
        a.transport.abort()  # the requester vanishes mid-answer
        frames = await until_end(b, stream_id, [])
    finally:
        await b.close()
    assert frames[-1]["event"] == "stream:complete", frames[-1]
    assert frames[-1]["data"]["content"] == REPLY
    done = await ollama.await_event("complete", within=10)
    assert done["content"] == REPLY
    assert not tracebacks(p.log_since(mark))
