"""Receipts as watermarks (``chat.services.receipts``) and their group commit
(``chat.receipt_writer``): watermarks only move up, seen implies delivered, a refused mark
fails alone, and a batch costs the same few queries whatever its size."""

import asyncio
import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Membership
from chat.receipt_writer import ReceiptWriter
from chat.services.messages import message_delete, message_send
from chat.services.receipts import DELIVERED, SEEN, Mark, Reader, receipts_mark_batch
from chat.services.sessions import session_create

pytestmark = pytest.mark.django_db


def watermarks(room, user) -> tuple[int, int]:
    member = Membership.objects.get(session=room, user=user)
    return member.last_delivered_seq, member.last_seen_seq


def mark_one(user, message, kind):
    (outcome,) = receipts_mark_batch([Mark(user.pk, message.pk, kind)]).outcomes
    return outcome


def test_a_receipt_marks_the_message_and_every_earlier_one(room, alice, bob):
    messages = [message_send(author=alice, session_id=room.pk, content=f"m{n}") for n in range(3)]

    ack = mark_one(bob, messages[1], DELIVERED)

    assert ack == {
        "sessionId": str(room.pk),
        "messageId": str(messages[1].pk),
        "seq": 2,
        "deliveredSeq": 2,
        "seenSeq": 0,
    }
    assert watermarks(room, bob) == (2, 0)


def test_seen_implies_delivered(room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="hi")

    ack = mark_one(bob, message, SEEN)

    assert (ack["deliveredSeq"], ack["seenSeq"]) == (1, 1)
    assert watermarks(room, bob) == (1, 1)


def test_watermarks_never_move_down(room, alice, bob):
    first = message_send(author=alice, session_id=room.pk, content="1")
    second = message_send(author=alice, session_id=room.pk, content="2")
    mark_one(bob, second, SEEN)

    ack = mark_one(bob, first, SEEN)
    delivered = mark_one(bob, first, DELIVERED)

    assert (ack["deliveredSeq"], ack["seenSeq"]) == (2, 2)
    assert (delivered["deliveredSeq"], delivered["seenSeq"]) == (2, 2)
    assert watermarks(room, bob) == (2, 2)


def test_only_moved_watermarks_are_reported(room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="hi")

    first = receipts_mark_batch([Mark(bob.pk, message.pk, DELIVERED)])
    again = receipts_mark_batch([Mark(bob.pk, message.pk, DELIVERED)])

    assert first.moved == {room.pk: {bob.pk: Reader(1, 0)}}
    assert again.moved == {}


def test_unknown_deleted_and_foreign_messages_are_not_found_each_alone(room, alice, bob, carol):
    kept = message_send(author=alice, session_id=room.pk, content="kept")
    gone = message_send(author=alice, session_id=room.pk, content="gone")
    message_delete(user=alice, message_id=gone.pk)

    outcomes = receipts_mark_batch(
        [
            Mark(bob.pk, uuid.uuid4(), SEEN),
            Mark(bob.pk, gone.pk, SEEN),
            Mark(carol.pk, kept.pk, SEEN),
            Mark(bob.pk, kept.pk, SEEN),
        ]
    ).outcomes

    assert [getattr(o, "code", None) for o in outcomes] == ["NOT_FOUND"] * 3 + [None]
    assert outcomes[3]["seenSeq"] == 1
    assert not Membership.objects.filter(session=room, user=carol).exists()


def test_a_batch_costs_the_same_queries_whatever_its_size(room, alice, make_user):
    readers = [make_user() for _ in range(12)]
    Membership.objects.bulk_create([Membership(session=room, user=u) for u in readers])
    other = session_create(creator=alice, title="other", member_ids=[u.pk for u in readers])
    messages = [message_send(author=alice, session_id=room.pk, content=f"m{n}") for n in range(4)]
    elsewhere = message_send(author=alice, session_id=other.pk, content="x")

    def queries(marks) -> int:
        with CaptureQueriesContext(connection) as captured:
            outcomes = receipts_mark_batch(marks).outcomes
        assert not [o for o in outcomes if isinstance(o, Exception)]
        return len(captured.captured_queries)

    one = queries([Mark(readers[0].pk, messages[0].pk, SEEN)])
    many = queries(
        [
            Mark(user.pk, message.pk, kind)
            for user in readers[1:]
            for message in (*messages, elsewhere)
            for kind in (DELIVERED, SEEN)
        ]
    )

    assert many == one
    assert {watermarks(room, u) for u in readers[1:]} == {(4, 4)}
    assert {watermarks(other, u) for u in readers[1:]} == {(1, 1)}


def test_a_batch_moves_only_the_memberships_its_marks_name(room, alice, bob, carol):
    # Bob marks in room, carol in other: bob's membership of other and carol's of room (read
    # and locked with the batch's sessions and users) keep their watermarks.
    other = session_create(creator=alice, title="other", member_ids=[bob.pk, carol.pk])
    Membership.objects.create(session=room, user=carol)
    in_room = message_send(author=alice, session_id=room.pk, content="here")
    in_other = message_send(author=alice, session_id=other.pk, content="there")

    receipts_mark_batch([Mark(bob.pk, in_room.pk, SEEN), Mark(carol.pk, in_other.pk, DELIVERED)])

    assert watermarks(room, bob) == (1, 1)
    assert watermarks(other, carol) == (1, 0)
    assert watermarks(other, bob) == (0, 0)
    assert watermarks(room, carol) == (0, 0)


@pytest.mark.django_db(transaction=True)
async def test_receipts_arriving_during_a_write_are_written_together_next(alice, make_user):
    readers = [await database_sync_to_async(make_user)() for _ in range(20)]
    room = await database_sync_to_async(session_create)(
        creator=alice, title="busy", member_ids=[u.pk for u in readers]
    )
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="hi"
    )
    batches = []

    def counting(marks):
        batches.append(len(marks))
        return receipts_mark_batch(marks)

    writer = ReceiptWriter(counting)

    first = writer.submit(Mark(readers[0].pk, message.pk, SEEN))
    await asyncio.sleep(0)  # its write starts
    acks = await asyncio.gather(
        first,
        *(writer.submit(Mark(u.pk, message.pk, SEEN)) for u in readers[1:]),
        writer.submit(Mark(alice.pk, uuid.uuid4(), SEEN)),
        return_exceptions=True,
    )

    assert [a["seenSeq"] for a in acks[:-1]] == [1] * 20
    assert acks[-1].code == "NOT_FOUND", "a refused receipt fails alone"
    assert batches == [1, 20], "alone, a receipt is written at once; the rest gather meanwhile"


async def test_a_huge_update_is_split_into_frames_under_the_cap(settings):
    from channels.layers import get_channel_layer

    from chat.events import frame_texts, group_for_session
    from chat.frame_size import frame_fits
    from chat.receipt_updates import READERS_PER_FRAME, ReceiptUpdates

    settings.RECEIPT_BROADCAST_INTERVAL_MS = 50
    layer = get_channel_layer()
    session_id = uuid.uuid4()
    channel = await layer.new_channel()
    await layer.group_add(group_for_session(session_id), channel)
    readers = {user_id: Reader(10**12, 10**12) for user_id in range(2 * READERS_PER_FRAME + 1)}

    ReceiptUpdates(asyncio.get_running_loop()).add({session_id: readers})
    texts = []
    while len(texts) < 3:
        texts.extend(frame_texts(await asyncio.wait_for(layer.receive(channel), timeout=5)))
    await layer.group_discard(group_for_session(session_id), channel)

    assert all(frame_fits(text) for text in texts)
    assert sum(text.count('"userId"') for text in texts) == len(readers)
