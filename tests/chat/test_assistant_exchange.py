"""A prompt and the empty answer stored together (a room stream's request): the same rows,
seqs, counters and ``message:new`` events as ``message_send`` then
``assistant_message_create``, in one write."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import event_types
from chat.models import ChatSession, Message, SessionEvent
from chat.services.assistant import assistant_exchange_open
from chat.services.messages import message_send
from chatproject.errors import DomainError

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_prompt_and_its_answer_take_the_next_two_seqs_and_go_out_in_order(room, alice, listen):
    message_send(author=alice, session_id=room.pk, content="before")
    drain = listen(room)
    prompt_id, answer_id = uuid.uuid4(), uuid.uuid4()

    question, answer = assistant_exchange_open(
        author=alice,
        session_id=room.pk,
        prompt="what time is it?",
        metadata={"status": "streaming"},
        prompt_id=prompt_id,
        answer_id=answer_id,
    )

    assert (question.pk, question.seq, answer.pk, answer.seq) == (prompt_id, 2, answer_id, 3)
    frames = drain()
    assert [(f["event"], f["seq"]) for f in frames] == [
        (event_types.MESSAGE_NEW, 2),
        (event_types.MESSAGE_NEW, 3),
    ]
    said, answering = (f["data"]["message"] for f in frames)
    assert (said["role"], said["content"]) == ("user", "what time is it?")
    assert said["author"]["id"] == alice.pk
    assert (answering["role"], answering["content"]) == ("assistant", "")
    assert answering["author"] is None
    assert answering["metadata"] == {"status": "streaming"}
    assert list(SessionEvent.objects.order_by("seq").values_list("seq", "message_id")) == [
        (1, Message.objects.get(seq=1).pk),
        (2, prompt_id),
        (3, answer_id),
    ]
    room.refresh_from_db()
    assert (room.last_seq, room.message_count) == (3, 3)


def test_both_are_stored_in_one_write_and_nothing_is_read_first(room, alice):
    with CaptureQueriesContext(connection) as queries:
        assistant_exchange_open(author=alice, session_id=room.pk, prompt="hi")

    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    # The seqs (checking the membership, returning the members), both messages, both
    # logged events.
    expected = ["UPDATE", "INSERT", "INSERT"]
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == expected
    assert Message.objects.filter(session=room).count() == 2


def test_in_a_thread_both_hang_under_the_root_and_are_counted_there(room, alice, bob):
    root = message_send(author=alice, session_id=room.pk, content="topic")
    reply = message_send(author=bob, session_id=room.pk, content="re", parent_id=root.pk)

    question, answer = assistant_exchange_open(
        author=alice, session_id=room.pk, prompt="summarise", parent_id=reply.pk
    )

    assert question.parent_id == answer.parent_id == root.pk
    root.refresh_from_db()
    room.refresh_from_db()
    assert root.reply_count == 3
    # Replies are not top-level messages: only the root counts there.
    assert room.message_count == 1


def test_a_non_member_is_refused_and_nothing_is_stored(room, carol):
    with pytest.raises(DomainError) as refused:
        assistant_exchange_open(author=carol, session_id=room.pk, prompt="let me in")

    assert refused.value.code == "FORBIDDEN"
    assert not Message.objects.exists()
    assert not SessionEvent.objects.exists()
    assert ChatSession.objects.get(pk=room.pk).last_seq == 0


def test_an_unknown_session_is_not_found(alice):
    with pytest.raises(DomainError) as refused:
        assistant_exchange_open(author=alice, session_id=uuid.uuid4(), prompt="anyone?")

    assert refused.value.code == "NOT_FOUND"
