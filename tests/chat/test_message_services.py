"""The message services: what they store, what they broadcast, and what they refuse."""

import pytest
from django.db import transaction

from chat import event_types
from chat.models import ChatSession, Message, MessageEdit, SessionEvent
from chat.services.messages import message_delete, message_edit, message_send
from chat.services.reactions import reaction_toggle
from chatproject.errors import DomainError

pytestmark = pytest.mark.django_db(transaction=True)


def test_send_stores_the_message_with_the_next_seq_and_broadcasts_it(room, alice, listen):
    drain = listen(room)
    first = message_send(author=alice, session_id=room.pk, content="hello")
    second = message_send(author=alice, session_id=room.pk, content="again")

    assert (first.seq, second.seq) == (1, 2)
    frames = drain()
    assert [f["event"] for f in frames] == [event_types.MESSAGE_NEW] * 2
    assert [f["seq"] for f in frames] == [1, 2]
    assert frames[0]["data"]["message"]["content"] == "hello"
    assert frames[0]["data"]["message"]["author"] == {"id": alice.pk, "username": "alice"}
    assert list(SessionEvent.objects.values_list("seq", "event")) == [
        (1, "message:new"),
        (2, "message:new"),
    ]


def test_a_repeated_client_id_returns_the_first_message_and_stores_no_duplicate(room, alice):
    first = message_send(author=alice, session_id=room.pk, content="hi", client_id="c-1")
    again = message_send(author=alice, session_id=room.pk, content="hi", client_id="c-1")

    assert again.pk == first.pk
    assert Message.objects.count() == 1
    assert SessionEvent.objects.count() == 1


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


def test_a_non_member_cannot_send(room, carol):
    with pytest.raises(DomainError) as caught:
        message_send(author=carol, session_id=room.pk, content="let me in")
    assert caught.value.code == "FORBIDDEN"
    assert Message.objects.count() == 0


def test_a_reply_to_a_reply_joins_the_root_thread_and_counts_once(room, alice, bob):
    root = message_send(author=alice, session_id=room.pk, content="topic")
    reply = message_send(author=bob, session_id=room.pk, content="r1", parent_id=root.pk)
    nested = message_send(author=alice, session_id=room.pk, content="r2", parent_id=reply.pk)

    assert nested.parent_id == root.pk
    root.refresh_from_db()
    assert root.reply_count == 2


def test_edit_keeps_history_and_broadcasts_with_a_new_seq(room, alice, listen):
    message = message_send(author=alice, session_id=room.pk, content="draft")
    drain = listen(room)

    edited = message_edit(user=alice, message_id=message.pk, content="final")

    assert edited.content == "final" and edited.is_edited and edited.seq == message.seq
    assert list(MessageEdit.objects.values_list("previous_content", flat=True)) == ["draft"]
    [frame] = drain()
    assert frame["event"] == event_types.MESSAGE_EDITED and frame["seq"] == 2
    assert frame["data"]["message"]["content"] == "final"


def test_only_the_author_edits(room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="mine")
    with pytest.raises(DomainError) as caught:
        message_edit(user=bob, message_id=message.pk, content="yours")
    assert caught.value.code == "FORBIDDEN"
    message.refresh_from_db()
    assert message.content == "mine"


def test_delete_leaves_a_tombstone_and_redacts_the_logged_text(room, alice, listen):
    message = message_send(author=alice, session_id=room.pk, content="oops secret")
    drain = listen(room)

    deleted = message_delete(user=alice, message_id=message.pk)

    [frame] = drain()
    assert frame == {
        "event": "message:deleted",
        "data": event_types.message_deleted(session_id=room.pk, message_id=message.pk),
        "seq": 2,
    }
    assert deleted.is_deleted
    logged = SessionEvent.objects.get(seq=1).frame["data"]["message"]
    assert logged["content"] == "" and logged["isDeleted"] is True
    message.refresh_from_db()
    assert message.content == "oops secret", "moderators keep the text"


def test_a_member_cannot_delete_someone_elses_message(room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="mine")
    with pytest.raises(DomainError) as caught:
        message_delete(user=bob, message_id=message.pk)
    assert caught.value.code == "FORBIDDEN"


def test_reaction_toggles_and_each_toggle_is_a_durable_event(room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="nice")

    added = reaction_toggle(user=bob, message_id=message.pk, emoji="👍")
    removed = reaction_toggle(user=bob, message_id=message.pk, emoji="👍")

    assert added == {
        "action": "added",
        "reactions": [{"emoji": "👍", "count": 1, "userIds": [bob.pk]}],
    }
    assert removed == {"action": "removed", "reactions": []}
    assert list(SessionEvent.objects.values_list("seq", "event")) == [
        (1, "message:new"),
        (2, "message:reaction:update"),
        (3, "message:reaction:update"),
    ]


@pytest.mark.parametrize(
    ("mode", "expected_content", "flagged"),
    [("censor", "you **** fool", True), ("off", "you shit fool", False)],
)
def test_profanity_filter_modes(settings, room, alice, mode, expected_content, flagged):
    settings.PROFANITY_FILTER = mode
    message = message_send(author=alice, session_id=room.pk, content="you shit fool")
    assert (message.content, message.is_flagged) == (expected_content, flagged)


def test_profanity_reject_mode_refuses_and_stores_nothing(settings, room, alice):
    settings.PROFANITY_FILTER = "reject"
    with pytest.raises(DomainError) as caught:
        message_send(author=alice, session_id=room.pk, content="you shit fool")
    assert caught.value.code == "CONTENT_REJECTED"
    assert Message.objects.count() == 0
