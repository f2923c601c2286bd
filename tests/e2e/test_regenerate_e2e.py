"""Regenerating one answer from two real worker processes (with PostgreSQL and Redis; one
worker on the embedded default), against the Ollama emulator: both members regenerate it, a
second regenerate is refused while a version streams, the other member's stop on the other
worker ends it, and the versions are right afterwards, over REST and in a replay."""

from __future__ import annotations

import pytest

from .test_streams_e2e import SLOW, chunk_at_least, chunks, ended, send, until

pytestmark = pytest.mark.e2e

STILL_WRITING = "This answer is still being written: stop it first."


async def test_two_members_on_two_workers_regenerate_and_stop_the_same_answer(platform, ollama):
    p = platform
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a, b = await p.connect(alice, 0), await p.connect(bob, 1)
    try:
        await send(a, "session:join", {"sessionId": room})
        await send(b, "session:join", {"sessionId": room})
        ollama.configure(reply="The first answer.", delay_ms=5)
        asked, _ = await send(a, "stream:request", {"sessionId": room, "prompt": "go"})
        first = asked["data"]
        await until(a, ended(first["streamId"]))
        await until(b, ended(first["streamId"]))

        # Bob (worker 1) regenerates it, slowly; everyone sees the new version stream into
        # the same message.
        ollama.configure(**SLOW)
        regen, early = await send(b, "stream:regenerate", {"messageId": first["messageId"]})
        assert regen["event"] == "ack", regen
        second = regen["data"]
        assert (second["messageId"], second["version"]) == (first["messageId"], 2)
        seen = await until(a, chunk_at_least(second["streamId"], 3))
        (start,) = [f["data"] for f in seen if f["event"] == "stream:start"]
        assert (start["messageId"], start["version"]) == (first["messageId"], 2)
        assert start["requestedBy"]["username"] == bob["username"]

        # Alice (worker 0) can't start another version meanwhile, from either door.
        refused, _ = await send(
            a, "stream:regenerate", {"messageId": first["messageId"]}, ref="again"
        )
        assert refused["event"] == "error", refused
        assert (refused["data"]["code"], refused["data"]["message"]) == (
            "STREAM_LIMIT", STILL_WRITING,
        )  # fmt: skip
        with p.api(alice, 0) as http:
            rest = http.post(f"/api/chat/messages/{first['messageId']}/regenerate")
        assert rest.status_code == 429 and rest.json()["code"] == "STREAM_LIMIT", rest.text

        # ... but she stops Bob's version from her worker.
        stop, _ = await send(a, "stream:stop", {"streamId": second["streamId"]}, ref="stop")
        assert stop["event"] == "ack" and stop["data"]["stopRequested"] is True, stop
        seen_by_b = early + await until(b, ended(second["streamId"]))
        stopped = seen_by_b[-1]
        assert stopped["event"] == "stream:stopped", stopped
        assert stopped["data"]["stoppedBy"]["username"] == alice["username"]
        kept = stopped["data"]["content"]
        assert kept and kept == "".join(c["delta"] for c in chunks(seen_by_b, second["streamId"]))
        assert await ollama.await_event("disconnect", within=10)

        # Now Alice regenerates: a third version, which completes.
        ollama.configure(reply="The third answer.", delay_ms=5, num_tokens=None)
        third_ack, _ = await send(
            a, "stream:regenerate", {"messageId": first["messageId"]}, ref="third"
        )
        assert third_ack["event"] == "ack" and third_ack["data"]["version"] == 3, third_ack
        third = third_ack["data"]
        await until(b, ended(third["streamId"]))
        await until(a, ended(third["streamId"]))

        with p.api(bob, 1) as http:
            versions = http.get(f"/api/chat/messages/{first['messageId']}/versions").json()
            history = http.get(f"/api/chat/sessions/{room}/messages").json()["messages"]
        assert versions["version"] == 3
        assert [
            (v["version"], v["status"], v["requestedBy"]["username"], v["content"])
            for v in versions["versions"]
        ] == [
            (1, "completed", alice["username"], "The first answer."),
            (2, "stopped", bob["username"], kept),
            (3, "completed", alice["username"], "The third answer."),
        ]
        answer = next(m for m in history if m["id"] == first["messageId"])
        assert answer["content"] == "The third answer."
        assert answer["metadata"]["version"] == 3
        assert [v["status"] for v in answer["metadata"]["versions"]] == [
            "completed", "stopped", "completed",
        ]  # fmt: skip
        assert sum(m["role"] == "assistant" for m in history) == 1

        # A member coming back by lastSeq on the other worker gets the same versions.
        c = await p.connect(bob, 0)
        try:
            replay, _ = await send(c, "session:join", {"sessionId": room, "lastSeq": 0})
            last = [
                f["data"]["message"]
                for f in replay["data"]["missed"]
                if f["event"] == "message:edited"
                and f["data"]["message"]["id"] == first["messageId"]
            ][-1]
            assert last["metadata"]["versions"] == answer["metadata"]["versions"]
            assert last["content"] == "The third answer."
        finally:
            await c.close()
    finally:
        await a.close()
        await b.close()
