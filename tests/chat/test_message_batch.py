"""``messages_send_batch``: many sends in one transaction, each with the outcome
``message_send`` would have given it, a failing one failing alone."""

import logging
import threading
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from chat import event_types
from chat.models import ChatSession, Message, SessionEvent
from chat.services.message_batch import SendRequest, messages_send_batch
from chat.services.messages import message_send
from chat.services.sessions import session_create
from chatproject.errors import DomainError
from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db(transaction=True)


def codes(outcomes) -> list:
    return [o.code if isinstance(o, DomainError) else type(o).__name__ for o in outcomes]


def test_a_failing_request_fails_alone_and_the_others_are_stored_in_order(
    settings, room, alice, bob, carol, listen
):
    settings.PROFANITY_FILTER = "reject"
    earlier = message_send(author=alice, session_id=room.pk, content="hi", client_id="c-0")
    drain = listen(room)

    outcomes = messages_send_batch(
        [
            SendRequest(alice, room.pk, "one"),
            SendRequest(carol, room.pk, "let me in"),
            SendRequest(alice, uuid.uuid4(), "anyone?"),
            SendRequest(bob, room.pk, "you shit fool"),
            SendRequest(bob, room.pk, "a reply", parent_id=uuid.uuid4()),
            SendRequest(bob, room.pk, "two", client_id="c-1"),
            SendRequest(alice, room.pk, "hi", client_id="c-0"),
            SendRequest(bob, room.pk, "two", client_id="c-1"),
            SendRequest(alice, room.pk, "three"),
        ]
    )

    assert codes(outcomes) == [
        "Message", "FORBIDDEN", "NOT_FOUND", "CONTENT_REJECTED", "VALIDATION_ERROR",
        "Message", "Message", "Message", "Message",
    ]  # fmt: skip
    one, two, repeat, two_again, three = (o for o in outcomes if isinstance(o, Message))
    assert (one.seq, two.seq, three.seq) == (2, 3, 4)
    assert (one.author_id, two.author_id, three.content) == (alice.pk, bob.pk, "three")
    assert repeat.pk == earlier.pk and two_again.pk == two.pk
    stored = Message.objects.filter(session=room).order_by("seq")
    assert list(stored.values_list("seq", "content")) == [
        (1, "hi"), (2, "one"), (3, "two"), (4, "three"),
    ]  # fmt: skip
    frames = drain()
    assert [(f["event"], f["seq"]) for f in frames] == [
        (event_types.MESSAGE_NEW, s) for s in (2, 3, 4)
    ]
    assert [f["data"]["message"]["id"] for f in frames] == [str(one.pk), str(two.pk), str(three.pk)]
    assert list(SessionEvent.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3, 4]
    room.refresh_from_db()
    assert (room.last_seq, room.message_count) == (4, 4)


def test_sends_into_several_sessions_take_each_session_s_seqs_in_order(alice, bob, carol):
    rooms = [session_create(creator=alice, title=f"r{n}", member_ids=[bob.pk]) for n in range(3)]
    requests = [
        SendRequest((alice, bob)[n % 2], rooms[n % 3].pk, f"m{n}") for n in range(12)
    ]  # fmt: skip

    outcomes = messages_send_batch(requests)

    assert [(o.session_id, o.content) for o in outcomes] == [
        (r.session_id, r.content) for r in requests
    ]
    for n, room in enumerate(rooms):
        stored = Message.objects.filter(session=room).order_by("seq")
        assert list(stored.values_list("seq", "content")) == [
            (seq, f"m{n + 3 * (seq - 1)}") for seq in range(1, 5)
        ]
        assert ChatSession.objects.get(pk=room.pk).last_seq == 4


def test_replies_and_top_level_messages_in_one_batch_move_their_counters(room, alice, bob):
    root = message_send(author=alice, session_id=room.pk, content="topic")
    reply = message_send(author=bob, session_id=room.pk, content="r1", parent_id=root.pk)

    outcomes = messages_send_batch(
        [
            SendRequest(alice, room.pk, "r2", parent_id=root.pk),
            SendRequest(bob, room.pk, "top"),
            SendRequest(alice, room.pk, "r3", parent_id=reply.pk),
        ]
    )

    assert [o.parent_id for o in outcomes] == [root.pk, None, root.pk]
    root.refresh_from_db()
    room.refresh_from_db()
    assert root.reply_count == 3
    assert (room.last_seq, room.message_count) == (5, 2)


@pytest.mark.skipif(not on_postgres(), reason="needs PostgreSQL: SQLite runs one writer")
def test_a_client_id_race_on_the_unique_constraint_fails_no_other_request(room, alice, bob, caplog):
    caplog.set_level(logging.INFO, logger="chat.services.message_batch")
    inserted, other = threading.Event(), {}

    def elsewhere() -> None:
        # Another worker stores alice's clientId after the batch looked for it, and commits
        # while the batch waits for the session row it holds.
        try:
            with transaction.atomic():
                other["message"] = message_send(
                    author=alice, session_id=room.pk, content="hi", client_id="c-1"
                )
                inserted.set()
                threading.Event().wait(0.5)
        finally:
            inserted.set()
            connection.close()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    inserted.wait(10)
    outcomes = messages_send_batch(
        [
            SendRequest(bob, room.pk, "before"),
            SendRequest(alice, room.pk, "hi", client_id="c-1"),
            SendRequest(bob, room.pk, "after"),
        ]
    )
    thread.join(10)

    # The batch met the other's row at its INSERT, and was stored one by one.
    assert "one by one" in caplog.text
    assert outcomes[1].pk == other["message"].pk
    assert [outcomes[0].seq, outcomes[2].seq] == [2, 3]
    stored = Message.objects.filter(session=room).order_by("seq")
    assert list(stored.values_list("seq", "content")) == [(1, "hi"), (2, "before"), (3, "after")]
    assert list(SessionEvent.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3]


def test_a_batch_reads_nothing_first_one_statement_per_session_then_two_inserts(
    alice, bob, django_capture_on_commit_callbacks
):
    rooms = [session_create(creator=alice, title=f"r{n}", member_ids=[bob.pk]) for n in range(2)]
    requests = [
        SendRequest((alice, bob)[n % 2], rooms[n % 2].pk, f"m{n}", client_id=f"c{n}")
        for n in range(6)
    ]

    with CaptureQueriesContext(connection) as captured, django_capture_on_commit_callbacks():
        outcomes = messages_send_batch(requests)

    assert all(isinstance(o, Message) for o in outcomes)
    statements = [q["sql"].split()[0] for q in captured.captured_queries]
    # No clientId or members read: each session's seq statement checks the authors (it
    # returns the members), and the unique constraint catches a repeated clientId.
    assert statements == ["BEGIN", "UPDATE", "UPDATE", "INSERT", "INSERT", "COMMIT"]


def test_a_non_member_in_a_batch_is_refused_and_the_others_are_stored_gap_free(
    room, alice, bob, carol
):
    outcomes = messages_send_batch(
        [
            SendRequest(alice, room.pk, "one"),
            SendRequest(carol, room.pk, "let me in"),
            SendRequest(bob, room.pk, "two"),
        ]
    )

    assert codes(outcomes) == ["Message", "FORBIDDEN", "Message"]
    stored = Message.objects.filter(session=room).order_by("seq")
    assert list(stored.values_list("seq", "content")) == [(1, "one"), (2, "two")]
    room.refresh_from_db()
    assert (room.last_seq, room.message_count) == (2, 2)
