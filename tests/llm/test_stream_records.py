"""What a room stream stores when it is requested: checked, saved and its context read in
one transaction, so a refused request leaves nothing behind and an accepted one costs one
commit before the model is asked."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from chat.models import Message, SessionEvent
from llm.models import Stream
from llm.services.stream_records import stream_prepare

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_request_is_checked_stored_and_read_with_one_commit(room, alice, bob):
    with CaptureQueriesContext(connection) as queries:
        plan = stream_prepare(
            user=alice, session_id=room.pk, stream_id=uuid.uuid4(), prompt="hello there"
        )

    statements = [q["sql"] for q in queries.captured_queries]
    assert statements.count("COMMIT") == 1
    # Three reads: the session (with the membership test), the context, its member count.
    selects = [sql for sql in statements[: statements.index("COMMIT")] if sql.startswith("SELECT")]
    assert len(selects) == 3
    assert sum('FROM "chat_chatsession"' in sql for sql in selects) == 1
    assert Stream.objects.get(pk=plan.stream_id).message_id == plan.message_id
    assert [m.role for m in Message.objects.filter(session=room).order_by("seq")] == [
        "user",
        "assistant",
    ]
    assert [m.content for m in plan.messages] == ["alice: hello there"]


def test_a_request_failing_half_way_leaves_nothing(room, alice):
    stream_id = uuid.uuid4()
    stream_prepare(user=alice, session_id=room.pk, stream_id=stream_id, prompt="first")

    # The same stream id again: both messages are written, then the Stream row fails.
    with pytest.raises(IntegrityError):
        stream_prepare(user=alice, session_id=room.pk, stream_id=stream_id, prompt="second")

    assert [m.content for m in Message.objects.filter(session=room).order_by("seq")] == [
        "first",
        "",
    ]
    assert SessionEvent.objects.filter(session=room).count() == 2
