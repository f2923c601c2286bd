"""What a room stream stores when it is requested: checked and its context read with nothing
written, then stored in one write (one transaction), so a refused request leaves nothing
behind and an accepted one costs one commit."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from chat.models import Message, SessionEvent
from chatproject.errors import DomainError
from llm.models import Stream
from llm.services.stream_records import stream_draft, stream_record
from llm.system_prompts import GROUP_CHAT
from tests.conftest import on_postgres

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_draft_reads_the_context_and_writes_nothing(room, alice, bob):
    with CaptureQueriesContext(connection) as queries:
        plan = stream_draft(
            user=alice, session_id=room.pk, stream_id=uuid.uuid4(), prompt="hello there"
        )

    statements = [q["sql"] for q in queries.captured_queries]
    assert all(sql.startswith("SELECT") for sql in statements), statements
    # The session (with the membership test), the context.
    assert len(statements) == 2
    assert [m.content for m in plan.messages] == [GROUP_CHAT, "alice: hello there"]
    assert plan.prompt == "hello there"
    assert not Message.objects.filter(session=room).exists()


def test_a_recorded_draft_stores_both_messages_and_the_stream_under_its_ids(room, alice):
    plan = stream_draft(user=alice, session_id=room.pk, stream_id=uuid.uuid4(), prompt="hello")

    with CaptureQueriesContext(connection) as queries:
        stream_record(plan=plan, prompt="hello")

    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    # Both messages' seqs (checking the membership, returning the members), both rows,
    # both logged events, the stream's row, in one commit. Nothing is read first.
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == [
        "UPDATE", "INSERT", "INSERT", "INSERT",
    ]  # fmt: skip
    if not on_postgres():
        assert statements.count("COMMIT") == 1
    stream = Stream.objects.get(pk=plan.stream_id)
    assert (stream.message_id, stream.user_message_id) == (plan.message_id, plan.user_message_id)
    stored = Message.objects.filter(session=room).order_by("seq")
    assert [(m.pk, m.role, m.content) for m in stored] == [
        (plan.user_message_id, "user", "hello"),
        (plan.message_id, "assistant", ""),
    ]


def test_a_draft_is_refused_for_a_non_member(room, carol):
    with pytest.raises(DomainError) as refused:
        stream_draft(user=carol, session_id=room.pk, stream_id=uuid.uuid4(), prompt="hi")

    assert refused.value.code == "FORBIDDEN"


def test_a_request_failing_half_way_leaves_nothing(room, alice):
    stream_id = uuid.uuid4()
    first = stream_draft(user=alice, session_id=room.pk, stream_id=stream_id, prompt="first")
    stream_record(plan=first, prompt="first")

    # The same stream id again: both messages are written, then the Stream row fails.
    again = stream_draft(user=alice, session_id=room.pk, stream_id=stream_id, prompt="second")
    with pytest.raises(IntegrityError):
        stream_record(plan=again, prompt="second")

    assert [m.content for m in Message.objects.filter(session=room).order_by("seq")] == [
        "first",
        "",
    ]
    assert SessionEvent.objects.filter(session=room).count() == 2
