"""LLM answers in rooms on real server processes, against the Ollama emulator: listeners on
both workers, a stop from the other worker closing the request to Ollama, a join
mid-stream. With one worker (the embedded default) "the other worker" is the same one."""

from __future__ import annotations

import asyncio
import json

import pytest

pytestmark = pytest.mark.e2e

WITHIN_S = 30
FINAL = ("stream:complete", "stream:stopped", "stream:error")
SLOW = {"num_tokens": 400, "delay_ms": 20}


async def send(ws, event: str, data: dict, ref="r") -> tuple[dict, list[dict]]:
    """Send a frame; its reply and the frames that arrived before it."""
    await ws.send(json.dumps({"event": event, "data": data, "ref": ref}))
    before = []
    async with asyncio.timeout(WITHIN_S):
        while True:
            frame = json.loads(await ws.recv())
            if frame["event"] in ("ack", "error") and frame.get("ref") == ref:
                return frame, before
            before.append(frame)


async def until(ws, done) -> list[dict]:
    """Frames up to and including the first for which ``done(frame)`` holds."""
    frames = []
    async with asyncio.timeout(WITHIN_S):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if done(frame):
                return frames


def ended(stream_id):
    return lambda f: f["event"] in FINAL and f["data"]["streamId"] == stream_id


def chunk_at_least(stream_id, index):
    return lambda f: (
        f["event"] == "stream:chunk"
        and f["data"]["streamId"] == stream_id
        and f["data"]["index"] >= index
    )


def chunks(frames, stream_id) -> list[dict]:
    return [
        f["data"]
        for f in frames
        if f["event"] == "stream:chunk" and f["data"]["streamId"] == stream_id
    ]


async def test_an_answer_reaches_listeners_on_both_workers_and_is_saved(platform, ollama):
    p = platform
    ollama.configure(reply="Streams cross workers just fine.", delay_ms=10)
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a, b = await p.connect(alice, 0), await p.connect(bob, 1)
    try:
        await send(a, "session:join", {"sessionId": room})
        await send(b, "session:join", {"sessionId": room})

        ack, early = await send(a, "stream:request", {"sessionId": room, "prompt": "go"})
        stream_id = ack["data"]["streamId"]
        seen_by_a = early + await until(a, ended(stream_id))
        seen_by_b = await until(b, ended(stream_id))

        assert ack["event"] == "ack", ack
        for frames in (seen_by_a, seen_by_b):
            parts = chunks(frames, stream_id)
            assert [c["index"] for c in parts] == list(range(len(parts)))
            assert "".join(c["delta"] for c in parts) == "Streams cross workers just fine."
            assert frames[-1]["event"] == "stream:complete"
        with p.api(bob, 1) as http:
            history = http.get(f"/api/chat/sessions/{room}/messages").json()["messages"]
            status = http.get(f"/api/chat/streams/{stream_id}/status").json()
        answer = next(m for m in history if m["id"] == ack["data"]["messageId"])
        assert answer["content"] == "Streams cross workers just fine."
        assert answer["role"] == "assistant" and answer["metadata"]["status"] == "completed"
        assert (status["status"], status["tokensGenerated"]) == ("completed", 5)
    finally:
        await a.close()
        await b.close()


async def test_a_stop_from_the_other_worker_ends_the_stream_and_the_ollama_request(
    platform, ollama
):
    p = platform
    ollama.configure(**SLOW)
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a, b = await p.connect(alice, 0), await p.connect(bob, 1)
    try:
        await send(a, "session:join", {"sessionId": room})
        await send(b, "session:join", {"sessionId": room})
        ack, early = await send(a, "stream:request", {"sessionId": room, "prompt": "go"})
        stream_id = ack["data"]["streamId"]
        seen = early + await until(a, chunk_at_least(stream_id, 2))

        stop, _ = await send(b, "stream:stop", {"streamId": stream_id}, ref="stop")
        seen += await until(a, ended(stream_id))

        assert stop["event"] == "ack" and stop["data"]["stopRequested"] is True
        stopped = seen[-1]
        assert stopped["event"] == "stream:stopped"
        assert stopped["data"]["stoppedBy"]["id"] == bob["id"]
        kept = "".join(c["delta"] for c in chunks(seen, stream_id))
        assert stopped["data"]["content"] == kept and kept
        gone = await ollama.await_event("disconnect", within=10)
        assert gone["tokens_sent"] < SLOW["num_tokens"]
        assert ollama.events("complete") == []
        with p.api(alice, 0) as http:
            message = http.get(f"/api/chat/messages/{ack['data']['messageId']}").json()
        assert message["content"] == kept and message["metadata"]["status"] == "stopped"
    finally:
        await a.close()
        await b.close()


async def test_joining_mid_stream_on_the_other_worker_resumes_exactly(platform, ollama):
    p = platform
    ollama.configure(**SLOW)
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a = await p.connect(alice, 0)
    b = None
    try:
        await send(a, "session:join", {"sessionId": room})
        ack, _ = await send(a, "stream:request", {"sessionId": room, "prompt": "go"})
        stream_id = ack["data"]["streamId"]
        await until(a, chunk_at_least(stream_id, 3))

        b = await p.connect(bob, 1)
        joined, before = await send(b, "session:join", {"sessionId": room})
        (active,) = joined["data"]["activeStreams"]
        live = await until(b, chunk_at_least(stream_id, active["index"] + 3))
        await send(a, "stream:stop", {"streamId": stream_id}, ref="stop")
        rest = await until(b, ended(stream_id))

        assert active["streamId"] == stream_id and active["index"] >= 3
        after = [c for c in chunks(before + live + rest, stream_id) if c["index"] > active["index"]]
        first = active["index"] + 1
        assert [c["index"] for c in after] == list(range(first, first + len(after)))
        assert active["content"] + "".join(c["delta"] for c in after) == rest[-1]["data"]["content"]
    finally:
        await a.close()
        if b is not None:
            await b.close()
