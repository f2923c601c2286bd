"""``@assistant`` on real server processes, against the Ollama emulator: a mention posted
over REST to one worker is answered in the room on both, and stopped from the other; one
sent over the WebSocket past the sender's budget is refused to the sender alone."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.test_streams_e2e import SLOW, chunk_at_least, chunks, ended, send, until

pytestmark = pytest.mark.e2e

QUIET_S = 1.5


def started(frame) -> bool:
    return frame["event"] == "stream:start"


async def test_a_mention_over_rest_is_answered_on_both_workers_and_stopped_from_either(
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
        with p.api(alice, 1) as http:
            posted = http.post(
                "/api/chat/messages", json={"sessionId": room, "content": "@Assistant go on"}
            )
        assert posted.status_code == 201, posted.text

        start = (await until(a, started))[-1]["data"]
        stream_id = start["streamId"]
        seen_by_b = await until(b, chunk_at_least(stream_id, 2))
        stop, _ = await send(a, "stream:stop", {"streamId": stream_id}, ref="stop")
        seen_by_b += await until(b, ended(stream_id))

        assert start["requestedBy"]["id"] == alice["id"]
        assert stop["event"] == "ack" and stop["data"]["stopRequested"] is True
        assert seen_by_b[-1]["event"] == "stream:stopped"
        kept = "".join(c["delta"] for c in chunks(seen_by_b, stream_id))
        with p.api(bob, 0) as http:
            status = http.get(f"/api/chat/streams/{stream_id}/status").json()
            answer = http.get(f"/api/chat/messages/{start['messageId']}").json()
            history = http.get(f"/api/chat/sessions/{room}/messages").json()["messages"]
        assert status["status"] == "stopped"
        assert answer["content"] == kept and answer["role"] == "assistant"
        assert [m["role"] for m in history] == ["user", "assistant"]
        assert history[0]["id"] == posted.json()["id"]
    finally:
        await a.close()
        await b.close()


async def test_past_the_budget_a_mention_is_refused_to_its_sender_alone(platform, ollama):
    p = platform
    ollama.configure(num_tokens=2)
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a, b = await p.connect(alice, 0), await p.connect(bob, 1)
    try:
        await send(a, "session:join", {"sessionId": room})
        await send(b, "session:join", {"sessionId": room})
        for index in range(10):  # the stream:request budget: 10 a minute
            ack, _ = await send(
                a, "stream:request", {"sessionId": room, "prompt": f"q{index}"}, ref=f"q{index}"
            )
            assert ack["event"] == "ack", ack

        sent, _ = await send(
            a, "message:send", {"sessionId": room, "content": "@assistant again"}, ref="m"
        )
        refused = (
            await until(a, lambda f: f["event"] == "stream:error" and not f["data"]["streamId"])
        )[-1]["data"]
        await asyncio.sleep(QUIET_S)

        assert sent["event"] == "ack"
        assert (refused["code"], refused["messageId"]) == ("RATE_LIMITED", sent["data"]["id"])
        seen_by_b = []
        while True:
            try:
                seen_by_b.append(await asyncio.wait_for(b.recv(), 0.2))
            except TimeoutError:
                break
        assert not [f for f in seen_by_b if '"streamId":null' in f.replace(" ", "")]
    finally:
        await a.close()
        await b.close()
