"""``message_send_async``: sends awaited concurrently on one event loop are stored together,
each caller getting its own message or its own error, each session's seqs in the order the
sends were submitted."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from chat.models import ChatSession, Message, SessionEvent
from chat.send_writer import BATCH_MAX, message_send_async
from chat.services.sessions import session_create
from chatproject.errors import DomainError
from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def stored(session) -> list[tuple]:
    return list(
        Message.objects.filter(session=session)
        .order_by("seq")
        .values_list("seq", "author_id", "content")
    )


@database_sync_to_async
def event_seqs(session) -> list[int]:
    return list(SessionEvent.objects.filter(session=session).values_list("seq", flat=True))


async def test_concurrent_sends_take_gap_free_seqs_in_submission_order(alice, bob, make_user):
    dave = await database_sync_to_async(make_user)()
    authors = [alice, bob, dave]
    rooms = [
        await database_sync_to_async(session_create)(
            creator=alice, title=f"r{n}", member_ids=[bob.pk, dave.pk]
        )
        for n in range(3)
    ]
    # More than one batch's worth: the sends that arrive while one is stored wait for it.
    sends = [(authors[n // 3 % 3], rooms[n % 3], f"m{n}") for n in range(BATCH_MAX + 50)]

    messages = await asyncio.gather(
        *(
            message_send_async(author=author, session_id=room.pk, content=text)
            for author, room, text in sends
        )
    )

    assert [(m.author_id, m.session_id, m.content) for m in messages] == [
        (author.pk, room.pk, text) for author, room, text in sends
    ]
    for room in rooms:
        mine = [(author.pk, text) for author, r, text in sends if r is room]
        expected = [(seq, *sent) for seq, sent in enumerate(mine, start=1)]
        assert await stored(room) == expected
        assert sorted(await event_seqs(room)) == list(range(1, len(mine) + 1))
        assert [m.seq for m in messages if m.session_id == room.pk] == [s for s, *_ in expected]
        last = await database_sync_to_async(ChatSession.objects.get)(pk=room.pk)
        assert (last.last_seq, last.message_count) == (len(mine), len(mine))


async def test_a_failing_send_fails_only_its_caller(settings, room, alice, bob, carol):
    settings.PROFANITY_FILTER = "reject"
    first = await message_send_async(author=alice, session_id=room.pk, content="hi", client_id="c")

    outcomes = await asyncio.gather(
        message_send_async(author=alice, session_id=room.pk, content="one"),
        message_send_async(author=carol, session_id=room.pk, content="let me in"),
        message_send_async(author=bob, session_id=room.pk, content="you shit fool"),
        message_send_async(author=alice, session_id=room.pk, content="hi", client_id="c"),
        message_send_async(author=bob, session_id=room.pk, content="two"),
        return_exceptions=True,
    )

    one, stranger, rude, repeat, two = outcomes
    assert (stranger.code, rude.code) == ("FORBIDDEN", "CONTENT_REJECTED")
    assert isinstance(stranger, DomainError) and repeat.pk == first.pk
    assert (one.seq, two.seq) == (2, 3)
    assert await stored(room) == [(1, alice.pk, "hi"), (2, alice.pk, "one"), (3, bob.pk, "two")]


@pytest.fixture
def teardown_backend_pid() -> int:
    """The backend of the test's own connection, which tears the test down."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@database_sync_to_async
def drop_connections(*, sparing: int) -> None:
    # A database restart, as the writer's connection sees it.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid NOT IN (pg_backend_pid(), %s)",
            [sparing],
        )


@pytest.mark.skipif(not on_postgres(), reason="needs PostgreSQL: connections to drop")
async def test_a_send_after_the_database_dropped_the_writer_s_connections_is_stored(
    alice, bob, teardown_backend_pid
):
    room = await database_sync_to_async(session_create)(
        creator=alice, title="general", member_ids=[bob.pk]
    )
    await message_send_async(author=alice, session_id=room.pk, content="one")
    await asyncio.sleep(0.2)  # the writer ran dry and gave its connection back

    await drop_connections(sparing=teardown_backend_pid)
    message = await message_send_async(author=bob, session_id=room.pk, content="two")

    assert message.seq == 2
    assert [content for *_, content in await stored(room)] == ["one", "two"]
