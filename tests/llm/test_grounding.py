"""Answers grounded in the room's files, against the Ollama emulator (its ``/api/embed``
gives deterministic vectors, so a test can say which passages a question retrieves):
uploads indexed off the request path, failures shown and retried, retrieval into the
stream's context, citations on the answer."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.urls import reverse
from langchain_core.messages import HumanMessage

from chat import event_types
from chat.models import Attachment, SessionEvent
from chat.services.messages import message_send
from llm.indexing import attachment_index_run, index_queue, index_sweep
from llm.models import Passage, Stream
from llm.retrieval import INTRO, grounded_context
from llm.vector_store import cache_forget

from ..chat.conftest import request
from .grounding_files import BROKEN_PDF, indexed, pdf_bytes, upload, wait_status
from .streams import frames_until_end, streams_stopped
from .test_room_streams import ask, closed_port_url, joined, saved

pytestmark = [pytest.mark.django_db(transaction=True)]

ROCKETS = (
    "Rocket engines burn propellant in a combustion chamber. The exhaust of a rocket engine "
    "is hotter than three thousand kelvin, and the nozzle is cooled by the fuel itself."
)
CATS = "Cats sleep most of the day. A cat purrs when content and kneads soft blankets."
BREAD = "Bread dough rises while yeast ferments sugar. Knead it, rest it, bake it golden."


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.INDEX_RETRY_MS = 50
    cache_forget()
    yield
    index_queue.wait_idle(30)
    cache_forget()


@pytest.fixture
def room_message(room, alice):
    return message_send(author=alice, session_id=room.pk, content="files for the assistant")


def index_events(room) -> list[dict]:
    rows = SessionEvent.objects.filter(session=room, event=event_types.ATTACHMENT_INDEX)
    return [row.frame for row in rows.order_by("seq")]


# -- extraction and indexing per type -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("notes.txt", b"Plain notes about the launch window on Tuesday.", "launch window"),
        ("readme.md", b"# Setup\n\nRun `make` and then **deploy** the site.", "deploy"),
        ("table.csv", b"city,population\nLisbon,545000\nPorto,232000\n", "Lisbon,545000"),
        ("report.pdf", pdf_bytes(["Quarterly report", "Revenue grew by twelve percent."]),
         "Revenue grew by twelve percent."),
    ],
    ids=["text", "markdown", "csv", "pdf"],
)  # fmt: skip
def test_an_upload_is_indexed_off_the_request_path(
    client_for, alice, room, room_message, ollama_emulator_settings, name, data, words
):
    response = upload(client_for(alice), room_message.pk, name, data)

    assert response.status_code == 201, response.content
    assert response.json()["indexStatus"] in ("pending", "indexing", "ready")
    attachment = indexed(response.json()["id"])
    assert attachment.index_status == "ready"
    assert attachment.index_error == ""
    assert attachment.index_attempts == 1
    assert attachment.indexed_at is not None
    passages = list(Passage.objects.filter(attachment=attachment))
    assert passages and words in " ".join(p.text for p in passages)
    assert {p.dimensions for p in passages} == {768}
    assert all(len(p.embedding) == 768 * 4 for p in passages)
    embeds = ollama_emulator_settings.events("embed")
    assert embeds and embeds[0]["model"] == "nomic-embed-text"
    # Each change is a durable, numbered event of the session.
    statuses = [frame["data"]["indexStatus"] for frame in index_events(room)]
    assert statuses == ["indexing", "ready"]
    frame = index_events(room)[-1]
    assert frame["data"] == event_types.attachment_index(
        session_id=room.pk,
        message_id=room_message.pk,
        attachment_id=attachment.pk,
        index_status="ready",
        index_error="",
    )
    assert isinstance(frame["seq"], int)


def test_a_long_file_becomes_several_passages_in_order(
    client_for, alice, room_message, ollama_emulator_settings
):
    text = " ".join(f"Paragraph {i} talks about topic number {i}." for i in range(400))
    response = upload(client_for(alice), room_message.pk, "long.txt", text.encode())

    attachment = indexed(response.json()["id"])

    passages = list(Passage.objects.filter(attachment=attachment).order_by("index"))
    assert attachment.index_status == "ready"
    assert len(passages) > 5
    assert [p.index for p in passages] == list(range(len(passages)))
    assert all(len(p.text) <= 1000 for p in passages)
    assert "topic number 399." in passages[-1].text


def test_a_broken_pdf_fails_with_its_reason_and_is_retried(
    client_for, alice, room, room_message, ollama_emulator_settings, settings
):
    response = upload(client_for(alice), room_message.pk, "broken.pdf", BROKEN_PDF)
    assert response.status_code == 201
    assert response.json()["mimeType"] == "application/pdf"

    attachment = indexed(response.json()["id"])

    assert attachment.index_status == "failed"
    assert attachment.index_error.startswith("The PDF could not be read")
    assert attachment.index_attempts == settings.INDEX_MAX_ATTEMPTS == 3
    statuses = [frame["data"]["indexStatus"] for frame in index_events(room)]
    assert statuses == ["indexing", "failed"] * 3
    assert not Passage.objects.filter(attachment=attachment).exists()
    # Shown on the attachment wherever it is read.
    listed = client_for(alice).get(
        reverse("message-attachments", kwargs={"message_id": room_message.pk})
    )
    assert listed.json()[0]["indexStatus"] == "failed"
    assert listed.json()[0]["indexError"] == attachment.index_error


def test_ollama_down_fails_then_the_retry_indexes_it_once_it_is_back(
    client_for, alice, room, room_message, ollama_emulator_settings, settings
):
    settings.INDEX_RETRY_MS = 1500
    settings.OLLAMA_URL = closed_port_url()

    response = upload(client_for(alice), room_message.pk, "notes.txt", b"Some notes to index.")
    failed = wait_status(response.json()["id"], "failed")

    assert "could not be reached" in failed.index_error
    assert failed.index_attempts == 1
    settings.OLLAMA_URL = ollama_emulator_settings.url
    attachment = indexed(response.json()["id"])
    assert attachment.index_status == "ready"
    assert attachment.index_attempts == 2
    statuses = [frame["data"]["indexStatus"] for frame in index_events(room)]
    assert statuses == ["indexing", "failed", "indexing", "ready"]


def test_an_unknown_embedding_model_is_named_in_the_failure(
    client_for, alice, room_message, ollama_emulator_settings, settings
):
    settings.OLLAMA_EMBED_MODEL = "no-such-embedder"
    response = upload(client_for(alice), room_message.pk, "notes.txt", b"Some notes.")

    attachment = indexed(response.json()["id"])

    assert attachment.index_status == "failed"
    assert "no-such-embedder" in attachment.index_error


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"secret text behind a link")

    def log_message(self, *args):
        pass


def test_link_attachments_are_never_fetched_nor_indexed(
    client_for, alice, room_message, ollama_emulator_settings
):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.hits.clear()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/notes.txt"
        response = client_for(alice).post(
            reverse("message-attachments", kwargs={"message_id": room_message.pk}),
            {"fileName": "notes.txt", "fileUrl": url, "mimeType": "text/plain", "fileSize": 25},
            format="json",
        )
        assert response.status_code == 201
        assert response.json()["indexStatus"] == ""
        asyncio.run(index_sweep())
        assert index_queue.wait_idle(10)
        time.sleep(0.2)
    finally:
        server.shutdown()
    assert _Recorder.hits == []
    assert Attachment.objects.get(pk=response.json()["id"]).index_status == ""
    assert not Passage.objects.exists()
    assert ollama_emulator_settings.events("embed") == []


def test_other_file_types_are_not_indexed(
    client_for, alice, room_message, ollama_emulator_settings
):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00\x00\x00\x01" * 2 + b"\x08\x02"
    response = upload(client_for(alice), room_message.pk, "dot.png", png + b"\x00" * 64)

    assert response.status_code == 201, response.content
    assert response.json()["indexStatus"] == ""
    assert index_queue.wait_idle(10)
    assert ollama_emulator_settings.events("embed") == []


# -- a dead worker's leftovers ----------------------------------------------------------


def test_the_sweeper_picks_up_what_a_dead_worker_left(
    client_for, alice, room_message, ollama_emulator_settings, monkeypatch
):
    # The upload's own hand-off is lost, as when its worker dies right after the commit.
    monkeypatch.setattr("llm.indexing.index_queue.submit", lambda *args, **kwargs: False)
    left = upload(client_for(alice), room_message.pk, "left.txt", b"Left pending.").json()
    monkeypatch.undo()
    stuck = upload(client_for(alice), room_message.pk, "stuck.txt", b"Left indexing.").json()
    indexed(stuck["id"])
    Attachment.objects.filter(pk=stuck["id"]).update(index_status="indexing")

    asyncio.run(index_sweep())

    assert indexed(left["id"]).index_status == "ready"
    assert indexed(stuck["id"]).index_status == "ready"


async def test_the_heartbeat_sweeps_what_was_left_pending(
    ws_connect, client_for, alice, room_message, ollama_emulator_settings, monkeypatch
):
    from chat import timers

    monkeypatch.setattr(timers, "PRESENCE_HEARTBEAT", 0.2)
    monkeypatch.setattr("llm.indexing.index_queue.submit", lambda *args, **kwargs: False)
    left = await database_sync_to_async(upload)(
        client_for(alice), room_message.pk, "left.txt", b"Left pending."
    )
    monkeypatch.undo()
    monkeypatch.setattr(timers, "PRESENCE_HEARTBEAT", 0.2)

    await ws_connect(alice)

    async with asyncio.timeout(20):
        while True:
            status = await database_sync_to_async(
                lambda: Attachment.objects.get(pk=left.json()["id"]).index_status
            )()
            if status == "ready":
                break
            await asyncio.sleep(0.1)


def test_an_attempt_whose_lease_another_worker_holds_is_skipped(
    client_for, alice, room_message, ollama_emulator_settings, monkeypatch
):
    monkeypatch.setattr("llm.indexing.index_queue.submit", lambda *args, **kwargs: False)
    left = upload(client_for(alice), room_message.pk, "left.txt", b"Left pending.").json()
    from llm.indexing import leases

    assert leases.take(left["id"])
    try:
        assert attachment_index_run(left["id"]) is None
        assert Attachment.objects.get(pk=left["id"]).index_status == "pending"
    finally:
        leases.release(left["id"])
    assert attachment_index_run(left["id"]) == "ready"


# -- indexing never blocks a send ---------------------------------------------------------


async def test_a_send_is_never_blocked_by_indexing(
    ws_connect, client_for, alice, room, ollama_emulator_settings, monkeypatch
):
    release = threading.Event()
    embedding = threading.Event()

    def slow_embed(texts, after_batch=None):
        embedding.set()
        assert release.wait(30)
        return [[1.0] + [0.0] * 767 for _ in texts]

    monkeypatch.setattr("llm.indexing.embed_documents", slow_embed)
    ws = await joined(ws_connect, alice, room)
    sent = await request(ws, "message:send", {"sessionId": str(room.pk), "content": "file"})
    message_id = sent["data"]["id"]
    try:
        started = time.monotonic()
        response = await database_sync_to_async(upload)(
            client_for(alice), message_id, "big.txt", b"A file whose embedding takes long."
        )
        assert response.status_code == 201
        assert time.monotonic() - started < 5
        assert await asyncio.to_thread(embedding.wait, 10)
        started = time.monotonic()
        reply = await request(
            ws, "message:send", {"sessionId": str(room.pk), "content": "still here"}, ref="r2"
        )
        assert reply["event"] == "ack"
        assert time.monotonic() - started < 2
        status = await database_sync_to_async(
            lambda: Attachment.objects.get(pk=response.json()["id"]).index_status
        )()
        assert status == "indexing"
    finally:
        release.set()
    attachment = await database_sync_to_async(indexed)(response.json()["id"])
    assert attachment.index_status == "ready"


# -- the events are durable ---------------------------------------------------------------


async def test_index_events_reach_the_room_and_replay_by_last_seq(
    ws_connect, client_for, alice, bob, room, ollama_emulator_settings
):
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="report"
    )
    ws = await joined(ws_connect, bob, room)

    response = await database_sync_to_async(upload)(
        client_for(alice), message.pk, "notes.txt", b"Notes."
    )
    seen = []
    async with asyncio.timeout(20):
        while len(seen) < 2:
            frame = await ws.receive_json_from(timeout=20)
            if frame["event"] == event_types.ATTACHMENT_INDEX:
                seen.append(frame)
    assert [f["data"]["indexStatus"] for f in seen] == ["indexing", "ready"]
    assert seen[1]["data"]["attachmentId"] == response.json()["id"]
    assert seen[0]["seq"] < seen[1]["seq"]

    again = await ws_connect(bob)
    reply = await request(
        again, "session:join", {"sessionId": str(room.pk), "lastSeq": message.seq}
    )
    missed = [f for f in reply["data"]["missed"] if f["event"] == event_types.ATTACHMENT_INDEX]
    assert missed == seen


# -- retrieval and citations ------------------------------------------------------------


def _upload_and_index(client, message_id, name, data) -> str:
    response = upload(client, message_id, name, data)
    assert response.status_code == 201, response.content
    attachment = indexed(response.json()["id"])
    assert attachment.index_status == "ready", attachment.index_error
    return str(attachment.pk)


async def test_the_answer_is_given_the_passages_that_match_the_question(
    ws_connect, client_for, alice, room, ollama_emulator_settings, settings
):
    settings.RETRIEVAL_TOP_K = 1
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="three files"
    )
    ids = {}
    for name, text in (("cats.txt", CATS), ("rockets.txt", ROCKETS), ("bread.md", BREAD)):
        ids[name] = await database_sync_to_async(_upload_and_index)(
            client_for(alice), message.pk, name, text.encode()
        )
    ws = await joined(ws_connect, alice, room)

    ack = await ask(ws, room, prompt="How hot is the exhaust of a rocket engine?")
    frames = await frames_until_end(ws, ack["streamId"])

    assert frames[-1]["event"] == "stream:complete"
    (chat,) = ollama_emulator_settings.requests()
    system = [m["content"] for m in chat["messages"] if m["role"] == "system"]
    assert len(system) == 2
    grounding = system[1]
    assert grounding.startswith(INTRO)
    assert "[rockets.txt, passage 1]" in grounding
    assert "three thousand kelvin" in grounding
    assert "Cats" not in grounding and "yeast" not in grounding
    # Right before the question.
    assert chat["messages"][-2]["content"] == grounding
    assert chat["messages"][-1]["content"].endswith("rocket engine?")
    citations = [
        {
            "attachmentId": ids["rockets.txt"],
            "fileName": "rockets.txt",
            "messageId": str(message.pk),
            "passages": [0],
        }
    ]
    answer = await saved(ack["messageId"])
    assert answer.metadata["citations"] == citations
    row = await database_sync_to_async(Stream.objects.get)(pk=ack["streamId"])
    assert row.citations == citations
    edited = [
        f for f in frames if f["event"] == "message:edited"
        and f["data"]["message"]["id"] == ack["messageId"]
    ]  # fmt: skip
    while not edited:
        frame = await ws.receive_json_from(timeout=10)
        if (
            frame["event"] == "message:edited"
            and frame["data"]["message"]["id"] == ack["messageId"]
        ):
            edited.append(frame)
    assert edited[-1]["data"]["message"]["metadata"]["citations"] == citations


def test_a_grounded_answer_reads_the_session_vectors_once(
    client_for, alice, room, room_message, ollama_emulator_settings, django_assert_num_queries
):
    _upload_and_index(client_for(alice), room_message.pk, "rockets.txt", ROCKETS.encode())
    ground = async_to_sync(grounded_context)
    question = [HumanMessage("rocket engine exhaust?")]
    ground(session_id=room.pk, messages=question, prompt="")  # the matrix is cached

    # The cache's check (count and newest id), then the texts of the passages found.
    with django_assert_num_queries(2):
        grounded = ground(session_id=room.pk, messages=question, prompt="")

    assert [c["fileName"] for c in grounded.citations] == ["rockets.txt"]


async def test_the_best_passages_come_first_within_the_budget(
    ws_connect, client_for, alice, room, ollama_emulator_settings, settings
):
    settings.RETRIEVAL_MAX_CHARS = len(ROCKETS) + len(BREAD) + 5
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="files"
    )
    for name, text in (("cats.txt", CATS), ("rockets.txt", ROCKETS), ("bread.md", BREAD)):
        await database_sync_to_async(_upload_and_index)(
            client_for(alice), message.pk, name, text.encode()
        )
    ws = await joined(ws_connect, alice, room)

    ack = await ask(ws, room, prompt="knead the dough, then rest it: rocket engine exhaust?")
    await frames_until_end(ws, ack["streamId"])

    answer = await saved(ack["messageId"])
    names = [c["fileName"] for c in answer.metadata["citations"]]
    # Cats share "knead" with the question too, but the budget holds two passages only.
    assert names in (["bread.md", "rockets.txt"], ["rockets.txt", "bread.md"])


async def test_a_room_without_files_asks_for_no_embedding(
    ws_connect, alice, room, ollama_emulator_settings
):
    ws = await joined(ws_connect, alice, room)

    ack = await ask(ws, room, prompt="anything?")
    await frames_until_end(ws, ack["streamId"])

    assert ollama_emulator_settings.events("embed") == []
    (chat,) = ollama_emulator_settings.requests()
    assert [m["role"] for m in chat["messages"]] == ["system", "user"]
    assert "citations" not in (await saved(ack["messageId"])).metadata


async def test_retrieval_failing_never_fails_the_answer(
    ws_connect, client_for, alice, room, ollama_emulator_settings, settings
):
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="files"
    )
    await database_sync_to_async(_upload_and_index)(
        client_for(alice), message.pk, "rockets.txt", ROCKETS.encode()
    )
    settings.OLLAMA_EMBED_MODEL = "gone-embedder"
    ws = await joined(ws_connect, alice, room)

    ack = await ask(ws, room, prompt="rocket engine?")
    frames = await frames_until_end(ws, ack["streamId"])

    assert frames[-1]["event"] == "stream:complete"
    assert "citations" not in (await saved(ack["messageId"])).metadata


async def test_a_deleted_messages_files_are_not_retrieved(
    ws_connect, client_for, alice, room, ollama_emulator_settings
):
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="files"
    )
    await database_sync_to_async(_upload_and_index)(
        client_for(alice), message.pk, "rockets.txt", ROCKETS.encode()
    )
    ws = await joined(ws_connect, alice, room)
    first = await ask(ws, room, prompt="rocket engine?")
    await frames_until_end(ws, first["streamId"])
    assert (await saved(first["messageId"])).metadata["citations"]

    reply = await request(ws, "message:delete", {"messageId": str(message.pk)}, ref="del")
    assert reply["event"] == "ack"
    second = await ask(ws, room, prompt="rocket engine?")
    await frames_until_end(ws, second["streamId"])

    assert "citations" not in (await saved(second["messageId"])).metadata
    await streams_stopped()


def test_healthz_names_the_vector_store(client, django_user_model):
    staff = django_user_model.objects.create_user("ops", password="pw-Secret-123", is_staff=True)
    client.force_login(staff)

    body = client.get("/healthz").json()

    assert body["vectors"] == "plain"
    client.logout()
    assert "vectors" not in client.get("/healthz").json()
