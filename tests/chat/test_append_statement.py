"""A send stored as one PostgreSQL statement (``chat.append_statement``): one round trip in
autocommit, the same rows and logged frames as the statement-by-statement path the other
databases take, and a failure that leaves a caller's transaction usable."""

import pytest
from django.db import connection, transaction
from psycopg.pq import TransactionStatus

from chat.models import ChatSession, Message, SessionEvent
from chat.services.messages import message_send
from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(not on_postgres(), reason="one statement on PostgreSQL only")
def test_a_send_outside_a_transaction_is_one_statement_with_no_begin_or_commit(room, alice):
    seen = []

    def record(execute, sql, params, many, context):
        seen.append((sql.split()[0], connection.connection.info.transaction_status))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        message_send(author=alice, session_id=room.pk, content="hello")

    # Idle before the statement: psycopg sends no BEGIN, and the server commits the
    # statement by itself.
    assert seen == [("WITH", TransactionStatus.IDLE)]
    assert connection.connection.info.transaction_status == TransactionStatus.IDLE
    assert Message.objects.get(session=room).content == "hello"


def test_the_logged_frame_carries_the_seq_the_message_was_stored_under(room, alice, bob):
    message_send(author=alice, session_id=room.pk, content="one")
    root = message_send(author=bob, session_id=room.pk, content="two")
    reply = message_send(author=alice, session_id=room.pk, content="re", parent_id=root.pk)

    for message in (root, reply):
        stored = Message.objects.get(pk=message.pk)
        frame = SessionEvent.objects.get(message=message).frame
        assert stored.seq == message.seq == frame["seq"] == frame["data"]["message"]["seq"]
    assert [reply.seq, root.seq] == [3, 2]
    root.refresh_from_db()
    assert root.reply_count == 1
    assert ChatSession.objects.get(pk=room.pk).last_seq == 3


def test_a_repeated_client_id_inside_a_caller_s_transaction_leaves_it_usable(room, alice):
    with transaction.atomic():
        first = message_send(author=alice, session_id=room.pk, content="hi", client_id="c-1")
        again = message_send(author=alice, session_id=room.pk, content="hi", client_id="c-1")
        # The transaction still works: a doomed one would refuse this query.
        later = message_send(author=alice, session_id=room.pk, content="next")

    assert again.pk == first.pk
    assert list(Message.objects.order_by("seq").values_list("seq", "content")) == [
        (1, "hi"),
        (2, "next"),
    ]
    assert later.seq == 2


def test_a_repeated_client_id_outside_a_transaction_takes_no_seq(room, alice):
    first = message_send(author=alice, session_id=room.pk, content="hi", client_id="c-1")
    again = message_send(author=alice, session_id=room.pk, content="hi", client_id="c-1")

    assert again.pk == first.pk
    assert ChatSession.objects.get(pk=room.pk).last_seq == 1
    assert SessionEvent.objects.count() == 1


def test_a_sent_message_saved_again_is_updated_not_inserted_twice(room, alice):
    message = message_send(author=alice, session_id=room.pk, content="draft")
    message.content = "final"

    message.save(update_fields=["content"])

    assert list(Message.objects.values_list("content", flat=True)) == ["final"]
