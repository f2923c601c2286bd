"""Answers grounded in the room's files, on real server processes against the Ollama
emulator: an upload through one worker is indexed in the background (the room hears each
status), and a question asked through the other worker is given the file's passages and
cites it. With one worker (the embedded default) "the other worker" is the same one."""

from __future__ import annotations

import httpx
import pytest

from tests.llm.grounding_files import pdf_bytes

from .test_streams_e2e import ended, send, until

pytestmark = pytest.mark.e2e

WITHIN_S = 30


async def test_an_upload_is_indexed_by_the_server_and_grounds_an_answer(platform, ollama):
    alice, bob = platform.user("alice"), platform.user("bob")
    room = platform.room(alice, bob)
    b = await platform.connect(bob, index=1)
    try:
        joined, _ = await send(b, "session:join", {"sessionId": room})
        assert joined["event"] == "ack"
        pdf = pdf_bytes(
            ["Launch checklist", "The rocket engine exhaust is hotter than three thousand kelvin."]
        )
        with platform.api(alice) as http:
            message = http.post(
                "/api/chat/messages", json={"sessionId": room, "content": "the checklist"}
            ).json()
            uploaded = http.post(
                f"/api/chat/messages/{message['id']}/attachments",
                files={"file": ("checklist.pdf", pdf, "application/pdf")},
            )
        assert uploaded.status_code == 201, uploaded.text
        attachment = uploaded.json()
        # The upload answered before indexing ended: it is still waiting, or under way.
        assert attachment["indexStatus"] in ("pending", "indexing", "ready")

        def index_ready(frame):
            return (
                frame["event"] == "attachment:index"
                and frame["data"]["attachmentId"] == attachment["id"]
                and frame["data"]["indexStatus"] in ("ready", "failed")
            )

        frames = await until(b, index_ready)
        statuses = [f["data"]["indexStatus"] for f in frames if f["event"] == "attachment:index"]
        assert statuses == ["indexing", "ready"], frames[-1]
        assert ollama.events("embed"), "the server never asked for embeddings"

        ack, _ = await send(
            b, "stream:request", {"sessionId": room, "prompt": "How hot is the rocket exhaust?"}
        )
        assert ack["event"] == "ack", ack
        stream_id, answer_id = ack["data"]["streamId"], ack["data"]["messageId"]
        end = await until(b, ended(stream_id))
        assert end[-1]["event"] == "stream:complete"

        def the_answer(frame):
            return (
                frame["event"] == "message:edited" and frame["data"]["message"]["id"] == answer_id
            )

        # Saved (message:edited) before the room is told it ended, so usually read already.
        edited = [f for f in end if the_answer(f)] or await until(b, the_answer)
        citations = edited[-1]["data"]["message"]["metadata"]["citations"]
        assert citations == [
            {
                "attachmentId": attachment["id"],
                "fileName": "checklist.pdf",
                "messageId": message["id"],
                "passages": [0],
            }
        ]
        (chat,) = ollama.requests()
        assert any(
            m["role"] == "system" and "three thousand kelvin" in m["content"]
            for m in chat["messages"]
        )
        # The attachment reads the same over REST, from either worker.
        with httpx.Client(
            base_url=platform.worker(1).url,
            headers={"Authorization": f"Bearer {bob['access']}"},
            timeout=10,
        ) as http:
            listed = http.get(f"/api/chat/messages/{message['id']}/attachments").json()
        assert listed[0]["indexStatus"] == "ready"
    finally:
        await b.close()


async def test_a_broken_pdf_is_shown_as_failed_and_the_server_answers_on(platform, ollama):
    alice = platform.user("alice")
    room = platform.room(alice)
    a = await platform.connect(alice)
    try:
        await send(a, "session:join", {"sessionId": room})
        with platform.api(alice) as http:
            message = http.post(
                "/api/chat/messages", json={"sessionId": room, "content": "broken"}
            ).json()
            uploaded = http.post(
                f"/api/chat/messages/{message['id']}/attachments",
                files={"file": ("broken.pdf", b"%PDF-1.7\nnot really a pdf" * 8, "x/y")},
            )
        assert uploaded.status_code == 201, uploaded.text

        def failed(frame):
            return frame["event"] == "attachment:index" and frame["data"]["indexStatus"] == "failed"

        frames = await until(a, failed)
        assert frames[-1]["data"]["indexError"].startswith("The PDF could not be read")
        reply, _ = await send(a, "message:send", {"sessionId": room, "content": "still fine"})
        assert reply["event"] == "ack"
    finally:
        await a.close()
