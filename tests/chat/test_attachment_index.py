"""The attachment index status service (chat owns it; the LLM app's indexer moves it): which
uploads wait for indexing, each change as a durable ``attachment:index`` event, the attempts
counted, and what the sweeper is given."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chat import event_types
from chat.models import Attachment, SessionEvent
from chat.serializers import AttachmentSerializer
from chat.services.attachment_index import (
    attachment_index_begin,
    attachment_index_fail,
    attachment_index_ready,
    attachments_index_waiting,
)
from chat.services.attachments import attachment_add_file, attachment_add_url
from chat.services.messages import message_delete, message_send

pytestmark = pytest.mark.django_db


@pytest.fixture
def message(room, alice):
    return message_send(author=alice, session_id=room.pk, content="see attached")


def add_file(alice, message, name: str, data: bytes) -> Attachment:
    upload = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    return attachment_add_file(user=alice, message_id=message.pk, upload=upload)


def index_frames(room) -> list[dict]:
    rows = SessionEvent.objects.filter(session=room, event=event_types.ATTACHMENT_INDEX)
    return [row.frame for row in rows.order_by("seq")]


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("notes.txt", b"plain text", "pending"),
        ("table.csv", b"a,b\n1,2\n", "pending"),
        ("doc.pdf", b"%PDF-1.4\n%%EOF\n", "pending"),
        ("blob.zip", b"PK\x03\x04" + b"\x00" * 40, ""),
    ],
)
def test_an_upload_waits_for_indexing_only_if_its_type_is_indexed(
    alice, message, name, data, status, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        attachment = add_file(alice, message, name, data)

    assert attachment.index_status == status
    assert AttachmentSerializer(attachment).data["indexStatus"] == status
    # The indexer is handed the file after the commit, never before (nor at all, unless
    # it is to be indexed): two callbacks are the broadcast and the hand-off.
    assert len(callbacks) == (2 if status else 1)


def test_a_link_is_never_to_be_indexed(alice, message):
    attachment = attachment_add_url(
        user=alice,
        message_id=message.pk,
        file_name="notes.txt",
        file_url="https://example.com/notes.txt",
        mime_type="text/plain",
    )

    assert attachment.index_status == ""
    assert attachments_index_waiting() == []
    assert attachment_index_begin(attachment_id=attachment.pk) is None


def test_each_change_is_a_durable_numbered_event(alice, room, message):
    attachment = add_file(alice, message, "notes.txt", b"plain text")

    began = attachment_index_begin(attachment_id=attachment.pk)
    assert began.index_status == "indexing"
    assert began.index_attempts == 1
    failed = attachment_index_fail(attachment_id=attachment.pk, error="Ollama is down.")
    assert (failed.index_status, failed.index_error) == ("failed", "Ollama is down.")
    again = attachment_index_begin(attachment_id=attachment.pk)
    assert (again.index_status, again.index_error, again.index_attempts) == ("indexing", "", 2)
    ready = attachment_index_ready(attachment_id=attachment.pk)
    assert ready.index_status == "ready"
    assert ready.indexed_at is not None

    frames = index_frames(room)
    assert [f["data"]["indexStatus"] for f in frames] == ["indexing", "failed", "indexing", "ready"]
    assert frames[1]["data"] == event_types.attachment_index(
        session_id=room.pk,
        message_id=message.pk,
        attachment_id=attachment.pk,
        index_status="failed",
        index_error="Ollama is down.",
    )
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert event_types.ATTACHMENT_INDEX in event_types.DURABLE_EVENTS


def test_an_attempt_begins_only_while_one_is_due(alice, message, settings):
    attachment = add_file(alice, message, "notes.txt", b"plain text")
    for _ in range(settings.INDEX_MAX_ATTEMPTS):
        assert attachment_index_begin(attachment_id=attachment.pk) is not None
        attachment_index_fail(attachment_id=attachment.pk, error="broken")

    # Every attempt used: failed for good.
    assert attachment_index_begin(attachment_id=attachment.pk) is None
    other = add_file(alice, message, "other.txt", b"more text")
    attachment_index_begin(attachment_id=other.pk)
    attachment_index_ready(attachment_id=other.pk)
    assert attachment_index_begin(attachment_id=other.pk) is None


def test_a_deleted_messages_files_are_left_alone(alice, room, message):
    attachment = add_file(alice, message, "notes.txt", b"plain text")
    message_delete(user=alice, message_id=message.pk)

    assert attachments_index_waiting() == []
    assert attachment_index_begin(attachment_id=attachment.pk) is None
    assert attachment_index_fail(attachment_id=attachment.pk, error="x") is None
    assert index_frames(room) == []


def test_the_sweeper_is_given_pending_and_indexing_ones_oldest_first(alice, message):
    first = add_file(alice, message, "a.txt", b"first")
    second = add_file(alice, message, "b.txt", b"second")
    done = add_file(alice, message, "c.txt", b"third")
    attachment_index_begin(attachment_id=second.pk)
    attachment_index_begin(attachment_id=done.pk)
    attachment_index_ready(attachment_id=done.pk)

    assert attachments_index_waiting() == [first.pk, second.pk]
    assert attachments_index_waiting(limit=1) == [first.pk]
