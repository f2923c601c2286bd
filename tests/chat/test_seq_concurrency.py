"""Concurrent sends to one session take gap-free, unique seqs in commit order (PostgreSQL).

SQLite serialises whole transactions, so only PostgreSQL, where the session row lock is
what orders writers, can show a race.
"""

import threading

import pytest
from django.db import connection

from chat.models import ChatSession, Message, SessionEvent
from chat.services.messages import message_send
from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8
SENDS = 25


def test_concurrent_sends_take_every_seq_once_in_commit_order(room, alice, bob, make_user):
    if not on_postgres():
        pytest.skip("needs PostgreSQL: SQLite runs one writer at a time")
    authors = [alice, bob, *(make_user() for _ in range(THREADS - 2))]
    for user in authors[2:]:
        room.memberships.create(user=user)
    start = threading.Barrier(THREADS)
    seqs_by_thread: dict[int, list[int]] = {}
    earlier_missing: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def sender(index: int) -> None:
        mine = seqs_by_thread.setdefault(index, [])
        try:
            start.wait()
            for n in range(SENDS):
                message = message_send(
                    author=authors[index], session_id=room.pk, content=f"t{index} n{n}"
                )
                mine.append(message.seq)
                # Committed with seq s, so every seq below s committed before it: a client
                # that reads s can't later be handed a smaller one.
                below = Message.objects.filter(session=room, seq__lt=message.seq).count()
                if below != message.seq - 1:
                    earlier_missing.append((message.seq, below))
        except BaseException as exc:  # reported below, a thread can't fail the test itself
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not any(t.is_alive() for t in threads), "a sender hung"
    assert errors == []
    total = THREADS * SENDS
    expected = list(range(1, total + 1))
    assert sorted(s for seqs in seqs_by_thread.values() for s in seqs) == expected
    for seqs in seqs_by_thread.values():
        assert seqs == sorted(seqs) and len(seqs) == SENDS
    assert (
        list(Message.objects.filter(session=room).order_by("seq").values_list("seq", flat=True))
        == expected
    )
    events = SessionEvent.objects.filter(session=room).order_by("seq")
    assert list(events.values_list("seq", flat=True)) == expected
    assert all(
        e.message.seq == e.seq and e.frame["seq"] == e.seq for e in events.select_related("message")
    )
    assert earlier_missing == []
    assert ChatSession.objects.get(pk=room.pk).last_seq == total
