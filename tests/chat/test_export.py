"""A session's export (``GET /api/chat/sessions/:id/export``): both formats' shape, threads
under their roots, attachments as links, answers with their model and agent, tombstones,
who may export, and reads in bounded pages."""

from __future__ import annotations

import json
import re

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.api_export import SessionExportApi
from chat.export_pages import EXPORT_PAGE_QUERIES, EXPORT_PAGE_SIZE, ExportCursor, export_page
from chat.models import ChatSession, Message
from chat.services.assistant import assistant_message_create
from chat.services.attachments import attachment_add_file, attachment_add_url
from chat.services.messages import message_delete, message_edit, message_send
from chat.services.sessions import session_create
from chat.services.webhooks import webhook_create, webhook_post
from llm.models import Agent
from tests.chat.test_attachments import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def export_url(session_id, fmt: str | None = None) -> str:
    url = f"/api/chat/sessions/{session_id}/export"
    return f"{url}?format={fmt}" if fmt else url


def body_of(response) -> bytes:
    """Everything the streamed response sends, read as the ASGI handler reads it: through
    its async iterator."""
    assert response.is_async, "the export must stream from an async iterator"

    async def read() -> bytes:
        return b"".join([part async for part in response.streaming_content])

    return async_to_sync(read)()


def export(client, session_id, fmt: str | None = None):
    response = client.get(export_url(session_id, fmt))
    assert response.status_code == 200, getattr(response, "content", b"")[:300]
    return response, body_of(response)


def say(room, user, content, parent=None) -> Message:
    return message_send(
        author=user, session_id=room.pk, content=content, parent_id=parent.pk if parent else None
    )


@pytest.fixture
def history(room, alice, bob):
    """A conversation with a thread, attachments (a link and a stored file), an answer by an
    agent's model, an edited message and a deleted one."""
    agent = Agent.objects.create(name="Helper", model="llama3.2")
    first = say(room, alice, "first **message**\nsecond line")
    attachment_add_url(
        user=alice,
        message_id=first.pk,
        file_name="spec [v2].pdf",
        file_url="https://example.com/spec v2.pdf",
        mime_type="application/pdf",
        file_size=2048,
    )
    stored = attachment_add_file(
        user=alice,
        message_id=first.pk,
        upload=SimpleUploadedFile("photo.png", png_bytes(), content_type="image/png"),
    )
    second = say(room, bob, "a second root")
    reply_one = say(room, bob, "reply one", parent=first)
    answer = assistant_message_create(
        session_id=room.pk, agent_id=agent.pk, metadata={"model": "llama3.2"}
    )
    Message.objects.filter(pk=answer.pk).update(content="the answer is 42", tokens=7)
    reply_two = say(room, alice, "reply two", parent=first)
    secret = say(room, bob, "secret words, then deleted")
    attachment_add_url(
        user=bob,
        message_id=secret.pk,
        file_name="secret.txt",
        file_url="https://example.com/secret.txt",
        mime_type="text/plain",
    )
    message_delete(user=bob, message_id=secret.pk)
    message_edit(user=bob, message_id=second.pk, content="a second root, edited")
    return {
        "order": [first, reply_one, reply_two, second, answer, secret],
        "stored": stored,
        "agent": agent,
    }


def test_json_is_one_object_with_the_session_and_messages_in_transcript_order(
    client_for, room, alice, history
):
    response, body = export(client_for(alice), room.pk, "json")
    data = json.loads(body)

    assert response["Content-Type"] == "application/json"
    assert set(data) == {"session", "exportedAt", "messages"}
    assert data["session"]["id"] == str(room.pk)
    assert data["session"]["title"] == "general"
    assert [m["username"] for m in data["session"]["members"]] == ["alice", "bob"]
    assert data["session"]["members"][0]["role"] == "owner"
    assert data["exportedAt"].endswith("Z")
    # Threads under their roots: replies right after the root they answer, by seq.
    assert [m["id"] for m in data["messages"]] == [str(m.pk) for m in history["order"]]
    first, reply_one, reply_two, second = data["messages"][:4]
    assert first["parentMessageId"] is None
    assert reply_one["parentMessageId"] == reply_two["parentMessageId"] == first["id"]
    assert first["author"] == {"id": alice.pk, "username": "alice"}
    assert first["content"] == "first **message**\nsecond line"
    assert second["isEdited"] is True and second["content"] == "a second root, edited"
    assert set(first) == {
        "id", "seq", "parentMessageId", "author", "role", "agentId", "agentName", "model",
        "content", "tokens", "isEdited", "editedAt", "isDeleted", "deletedAt", "createdAt",
        "attachments", "isBot", "webhook",
    }  # fmt: skip
    assert first["isBot"] is False and first["webhook"] is None


def test_attachments_are_links_absolute_for_stored_files(client_for, room, alice, history):
    _, body = export(client_for(alice), room.pk)
    first = json.loads(body)["messages"][0]

    link, stored = first["attachments"]
    assert link == {
        "id": link["id"],
        "fileName": "spec [v2].pdf",
        "url": "https://example.com/spec v2.pdf",
        "mimeType": "application/pdf",
        "fileSize": 2048,
    }
    assert stored["fileName"] == "photo.png"
    assert stored["url"] == (
        f"http://testserver/api/chat/attachments/{history['stored'].pk}/download"
    )


def test_an_answer_carries_its_model_and_agent(client_for, room, alice, history):
    _, body = export(client_for(alice), room.pk)
    answer = json.loads(body)["messages"][4]

    assert answer["role"] == "assistant"
    assert answer["author"] is None
    assert answer["model"] == "llama3.2"
    assert answer["agentId"] == str(history["agent"].pk)
    assert answer["agentName"] == "Helper"
    assert answer["tokens"] == 7
    assert answer["content"] == "the answer is 42"


def test_a_deleted_message_is_a_tombstone_without_its_text_or_attachments(
    client_for, room, alice, history
):
    client = client_for(alice)
    _, body = export(client, room.pk, "json")
    tombstone = json.loads(body)["messages"][-1]
    _, markdown = export(client, room.pk, "md")

    assert tombstone["isDeleted"] is True
    assert tombstone["deletedAt"] is not None
    assert tombstone["content"] == "" and tombstone["attachments"] == []
    assert tombstone["author"]["username"] == "bob"
    for text in (body, markdown):
        assert b"secret" not in text
    assert b"*This message was deleted.*" in markdown


def test_markdown_is_a_transcript_with_threads_quoted_under_their_root(
    client_for, room, alice, history
):
    response, body = export(client_for(alice), room.pk, "md")
    text = body.decode()

    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert text.startswith("# general\n")
    assert "Members: alice (owner), bob." in text
    headings = re.findall(r"^(?:> )?#### (.+)$", text, flags=re.MULTILINE)
    assert [h.split(" · ")[0] for h in headings] == [
        "alice",
        "↳ bob",
        "↳ alice",
        "bob",
        "Assistant (llama3.2, agent Helper)",
        "bob",
    ]
    assert headings[3].endswith("(edited)")
    assert "first **message**\nsecond line\n" in text
    assert "> reply one\n" in text
    assert "- Attachment: [spec \\[v2\\].pdf](<https://example.com/spec%20v2.pdf>)" in text
    download = f"http://testserver/api/chat/attachments/{history['stored'].pk}/download"
    assert f"[photo.png](<{download}>) (image/png," in text
    assert "the answer is 42" in text


def test_the_download_is_named_after_the_title_and_date(client_for, alice, bob):
    room = session_create(creator=alice, title='Q3 plans: "draft"/final', member_ids=[])
    client = client_for(alice)
    json_response, _ = export(client, room.pk)
    md_response, _ = export(client, room.pk, "md")

    day = ChatSession.objects.get(pk=room.pk).created_at.date().isoformat()
    assert json_response["Content-Disposition"] == (
        f'attachment; filename="Q3-plans-draft-final-{day}.json"'
    )
    assert md_response["Content-Disposition"].endswith(f'-{day}.md"')
    assert json_response["X-Content-Type-Options"] == "nosniff"


def test_an_empty_session_exports_valid_json(client_for, alice):
    room = session_create(creator=alice, title="quiet", member_ids=[])
    _, body = export(client_for(alice), room.pk)
    assert json.loads(body)["messages"] == []


def test_only_members_may_export(client_for, room, carol):
    assert client_for(carol).get(export_url(room.pk)).status_code == 403
    assert client_for().get(export_url(room.pk)).status_code == 401


def test_an_unknown_session_is_404_and_an_unknown_format_400(client_for, room, alice):
    client = client_for(alice)
    missing = client.get(export_url("00000000-0000-0000-0000-000000000000"))
    bad = client.get(export_url(room.pk, "pdf"))

    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
    assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"
    assert "format" in bad.json()["details"]


def test_the_web_app_session_cookie_can_download(client, room, alice):
    client.force_login(alice)
    response = client.get(export_url(room.pk, "md"))
    assert response.status_code == 200
    assert body_of(response).startswith(b"# general")


def _bulk(room, authors, specs) -> list[Message]:
    """Messages written straight to the table: ``specs`` are (parent index or None) in seq
    order. The counters (``reply_count``, ``last_seq``) are kept as sends keep them."""
    room.refresh_from_db()
    rows: list[Message] = []
    for seq, parent in enumerate(specs, start=room.last_seq + 1):
        rows.append(
            Message(
                session=room,
                seq=seq,
                author=authors[seq % len(authors)],
                content=f"message {seq}",
                parent=rows[parent] if parent is not None else None,
            )
        )
    for row in rows:
        if row.parent is not None:
            row.parent.reply_count += 1
    Message.objects.bulk_create(rows)
    ChatSession.objects.filter(pk=room.pk).update(last_seq=rows[-1].seq)
    return rows


def _pages(session_id, size):
    pages, cursor = [], None
    while True:
        with CaptureQueriesContext(connection) as captured:
            page = export_page(session_id=session_id, after=cursor, size=size)
        pages.append((page, len(captured.captured_queries)))
        if page.next is None:
            return pages
        cursor = page.next


def test_pages_are_bounded_in_size_and_queries_whatever_the_threads(room, alice, bob):
    # Roots with no replies, small threads, and one thread far larger than a page.
    specs = [None] * 7
    specs += [None, 7, 7, None, 10, None]
    specs += [None] + [13] * 23
    specs += [None, 37, None]
    rows = _bulk(room, [alice, bob], specs)
    expected = []
    for row in rows:
        if row.parent is None:
            expected.append(row.pk)
            expected.extend(r.pk for r in rows if r.parent is row)

    pages = _pages(room.pk, size=5)

    assert [m.pk for page, _ in pages for m in page.messages] == expected
    assert all(len(page.messages) <= 5 for page, _ in pages)
    assert max(queries for _, queries in pages) <= EXPORT_PAGE_QUERIES
    # No page is wasted: only the last may be short.
    assert all(len(page.messages) >= 4 for page, _ in pages[:-1])


def test_a_page_runs_the_same_queries_for_any_number_of_messages(room, alice, bob):
    _bulk(room, [alice, bob], [None, 0] * 10)
    with CaptureQueriesContext(connection) as few:
        export_page(session_id=room.pk, size=500)
    _bulk(room, [alice, bob], [None, 0, 0] * 150)
    with CaptureQueriesContext(connection) as many:
        page = export_page(session_id=room.pk, size=500)

    assert len(page.messages) == 20 + 450
    assert len(many.captured_queries) == len(few.captured_queries) <= EXPORT_PAGE_QUERIES


def test_a_thread_larger_than_a_page_continues_on_the_next_pages(room, alice, bob):
    rows = _bulk(room, [alice, bob], [None] + [0] * 12 + [None])
    first = export_page(session_id=room.pk, size=5)
    assert first.next == ExportCursor(rows[0].seq, rows[0].pk, rows[4].seq)
    pages = _pages(room.pk, size=5)
    assert [len(page.messages) for page, _ in pages] == [5, 5, 4]
    assert pages[-1][0].messages[-1].pk == rows[-1].pk


def test_the_response_reads_the_session_in_pages(client_for, room, alice, bob, monkeypatch):
    _bulk(room, [alice, bob], [None, None, 1] * 400)
    reads = []

    def counted(**kwargs):
        page = export_page(**kwargs)
        reads.append(len(page.messages))
        return page

    monkeypatch.setattr("chat.api_export.export_page", counted)
    _, body = export(client_for(alice), room.pk)

    assert len(json.loads(body)["messages"]) == 1200
    assert SessionExportApi.page_size == EXPORT_PAGE_SIZE
    assert max(reads) <= EXPORT_PAGE_SIZE < 1200
    assert len(reads) >= 1200 // EXPORT_PAGE_SIZE


def test_a_webhook_post_is_exported_as_a_bot_under_its_posted_name(client_for, room, alice):
    hook, _ = webhook_create(user=alice, session_id=room.pk, name="CI builds")
    webhook_post(hook=hook, content="Build #7 passed", username="deploy-bot")

    _, body = export(client_for(alice), room.pk, "json")
    (post,) = json.loads(body)["messages"]
    assert post["isBot"] is True
    assert post["webhook"] == {"id": str(hook.pk), "username": "deploy-bot"}

    _, markdown = export(client_for(alice), room.pk, "md")
    assert "#### deploy-bot (bot) · " in markdown.decode()
