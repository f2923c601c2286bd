"""The counters history's ``total`` reads instead of a ``COUNT(*)``: ``ChatSession.message_count``
(top-level messages) and ``Message.reply_count`` (a thread's replies). Every way a message is
created keeps them equal to what history lists, tombstones included, in the transaction of
the send; the migration counts the messages stored before it."""

from importlib import import_module

import pytest
from django.apps import apps
from django.db import IntegrityError

from chat.models import ChatSession, Message, SessionEvent
from chat.services.assistant import assistant_message_create
from chat.services.messages import message_delete, message_send

pytestmark = pytest.mark.django_db


def listed(session, parent=None) -> int:
    """What history lists for the conversation: every message in it, deleted or not."""
    return Message.objects.filter(session=session, parent=parent).count()


def message_count(session) -> int:
    session.refresh_from_db()
    return session.message_count


def test_sends_count_in_the_timeline_and_replies_in_their_thread(room, alice, bob):
    first = message_send(author=alice, session_id=room.pk, content="one")
    message_send(author=bob, session_id=room.pk, content="two")
    reply = message_send(author=bob, session_id=room.pk, content="re", parent_id=first.pk)
    message_send(author=alice, session_id=room.pk, content="re re", parent_id=reply.pk)

    first.refresh_from_db()
    assert message_count(room) == listed(room) == 2
    assert first.reply_count == listed(room, first) == 2


def test_deleted_messages_still_count_as_history_lists_their_tombstones(room, alice, bob):
    root = message_send(author=alice, session_id=room.pk, content="topic")
    reply = message_send(author=bob, session_id=room.pk, content="re", parent_id=root.pk)

    message_delete(user=alice, message_id=root.pk)
    message_delete(user=bob, message_id=reply.pk)

    root.refresh_from_db()
    assert message_count(room) == listed(room) == 1
    assert root.reply_count == listed(room, root) == 1


def test_assistant_messages_count_in_the_timeline_or_in_their_thread(room, alice):
    prompt = message_send(author=alice, session_id=room.pk, content="question")
    assistant_message_create(session_id=room.pk)
    assistant_message_create(session_id=room.pk, parent_id=prompt.pk)

    prompt.refresh_from_db()
    assert message_count(room) == listed(room) == 2
    assert prompt.reply_count == listed(room, prompt) == 1


def test_a_repeated_client_id_is_counted_once(room, alice):
    message_send(author=alice, session_id=room.pk, content="hi", client_id="c-1")
    message_send(author=alice, session_id=room.pk, content="hi", client_id="c-1")

    assert message_count(room) == listed(room) == 1


@pytest.mark.django_db(transaction=True)
def test_a_send_that_rolls_back_leaves_the_count_alone(room, alice):
    # A logged event already holds the next seq, so logging the send's event fails after its
    # seq and its message were written.
    SessionEvent.objects.create(session=room, seq=1, event="message:new", frame={})
    with pytest.raises(IntegrityError):
        message_send(author=alice, session_id=room.pk, content="lost")

    assert message_count(room) == listed(room) == 0
    assert ChatSession.objects.get(pk=room.pk).last_seq == 0


def test_the_migration_counts_the_messages_stored_before_it(room, alice, bob):
    root = message_send(author=alice, session_id=room.pk, content="topic")
    message_send(author=bob, session_id=room.pk, content="re", parent_id=root.pk)
    message_send(author=bob, session_id=room.pk, content="two")
    message_delete(user=alice, message_id=root.pk)
    empty = ChatSession.objects.create(title="empty", created_by=alice)
    ChatSession.objects.update(message_count=7)

    migration = import_module("chat.migrations.0003_chatsession_message_count")
    migration.backfill(apps, None)

    assert (message_count(room), message_count(empty)) == (2, 0)
