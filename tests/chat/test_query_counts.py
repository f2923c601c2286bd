"""The hot read endpoints run a fixed number of queries, however much they return (no N+1)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Attachment, Membership, Reaction
from chat.selectors import message_history
from chat.services.messages import message_send
from chat.services.sessions import session_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def crowd(make_user, room):
    """Three more members of ``room``, to react and reply."""
    users = [make_user() for _ in range(3)]
    Membership.objects.bulk_create([Membership(session=room, user=u) for u in users])
    return users


def fill(room, author, crowd, n, word="lorem"):
    """``n`` top-level messages, each with a reply, reactions by several users and a linked
    attachment."""
    for i in range(n):
        message = message_send(author=author, session_id=room.pk, content=f"{word} number {i}")
        message_send(
            author=crowd[i % len(crowd)], session_id=room.pk, content="re", parent_id=message.pk
        )
        Reaction.objects.bulk_create(
            [Reaction(message=message, user=u, emoji=e) for u in crowd for e in ("👍", "🎉")]
        )
        Attachment.objects.create(
            message=message,
            uploaded_by=author,
            file_name="a.png",
            file_url="https://example.com/a.png",
            mime_type="image/png",
        )


def queries_for(client, url) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured.captured_queries), response.json()


def test_history_queries_do_not_grow_with_the_page(client_for, room, alice, crowd):
    client = client_for(alice)
    fill(room, alice, crowd, 5)
    few, small = queries_for(client, f"/api/chat/sessions/{room.pk}/messages?limit=50")
    fill(room, alice, crowd, 45)
    many, large = queries_for(client, f"/api/chat/sessions/{room.pk}/messages?limit=50")

    assert (len(small["messages"]), len(large["messages"])) == (5, 50)
    assert large["messages"][-1]["reactions"][0]["count"] == 3
    assert large["messages"][-1]["attachments"][0]["fileName"] == "a.png"
    assert large["messages"][-1]["replyCount"] == 1
    assert many == few


def test_history_reads_its_total_without_counting_the_session(client_for, room, alice, crowd):
    client = client_for(alice)
    fill(room, alice, crowd, 3)

    with CaptureQueriesContext(connection) as captured:
        page = client.get(f"/api/chat/sessions/{room.pk}/messages?limit=2&beforeSeq=5").json()

    assert page["total"] == 3
    assert not [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]


def test_thread_queries_do_not_grow_with_the_replies(client_for, room, alice, crowd):
    client = client_for(alice)
    root = message_send(author=alice, session_id=room.pk, content="topic")

    def reply(n):
        for i in range(n):
            r = message_send(
                author=crowd[i % 3], session_id=room.pk, content="r", parent_id=root.pk
            )
            Reaction.objects.create(message=r, user=alice, emoji="👍")

    reply(2)
    few, _ = queries_for(client, f"/api/chat/messages/{root.pk}/thread")
    reply(20)
    many, replies = queries_for(client, f"/api/chat/messages/{root.pk}/thread")

    assert len(replies) == 22
    assert many == few


def test_search_queries_do_not_grow_with_the_results(client_for, room, alice, crowd):
    client = client_for(alice)
    fill(room, alice, crowd, 5, word="needle")
    few, small = queries_for(client, f"/api/chat/sessions/{room.pk}/search?query=needle&limit=50")
    fill(room, alice, crowd, 45, word="needle")
    many, large = queries_for(client, f"/api/chat/sessions/{room.pk}/search?query=needle&limit=50")

    assert (small["total"], large["total"]) == (5, 50)
    assert len(large["results"]) == 50
    assert many == few


def test_session_list_queries_do_not_grow_with_the_sessions(client_for, alice, make_user):
    client = client_for(alice)

    def sessions(n):
        for i in range(n):
            others = [make_user() for _ in range(3)]
            session = session_create(
                creator=alice if i % 2 else others[0],
                title=f"s{i}",
                member_ids=[u.pk for u in others] + [alice.pk],
            )
            message_send(author=alice, session_id=session.pk, content="hi")

    sessions(3)
    few, small = queries_for(client, "/api/chat/sessions")
    sessions(9)
    many, large = queries_for(client, "/api/chat/sessions")

    assert (len(small), len(large)) == (3, 12)
    assert all(len(s["members"]) == 4 for s in large)
    assert many == few


def test_presence_queries_do_not_grow_with_the_members(client_for, room, alice, make_user):
    client = client_for(alice)
    few, _ = queries_for(client, f"/api/chat/sessions/{room.pk}/presence")
    Membership.objects.bulk_create([Membership(session=room, user=make_user()) for _ in range(10)])
    many, members = queries_for(client, f"/api/chat/sessions/{room.pk}/presence")

    assert len(members) == 12
    assert many == few


def test_a_history_page_is_one_statement_on_postgresql(room, alice, crowd):
    """The page with its reactions, attachments and mentions as arrays on PostgreSQL; on
    SQLite the page, then its reactions, its attachments and its mentions
    (``chat.message_details``)."""
    fill(room, alice, crowd, 3)
    room.refresh_from_db()

    with CaptureQueriesContext(connection) as captured:
        page = message_history(session=room, limit=50)

    assert len(page.messages) == 3
    assert len(captured.captured_queries) == (1 if connection.vendor == "postgresql" else 4)


def test_history_loads_only_the_authors_id_and_username(room, alice, crowd):
    fill(room, alice, crowd, 1)

    (message,) = message_history(session=room, limit=1).messages

    assert message.author.get_deferred_fields() >= {"password", "email"}
    assert "username" not in message.author.get_deferred_fields()


def test_a_send_is_three_statements_and_reads_nothing_after(
    room, alice, django_capture_on_commit_callbacks
):
    with (
        CaptureQueriesContext(connection) as captured,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        message_send(author=alice, session_id=room.pk, content="hello")

    statements = [q["sql"].split()[0] for q in captured.captured_queries]
    # The seq (with the membership check, returning the members), the message, its logged
    # event.
    assert statements == ["UPDATE", "INSERT", "INSERT"]
    assert len(callbacks) == 1


def test_message_receipts_queries_do_not_grow_with_the_readers(client_for, room, alice, crowd):
    from chat.services.receipts import SEEN, Mark, receipts_mark_batch

    client = client_for(alice)
    message = message_send(author=alice, session_id=room.pk, content="read me")
    url = f"/api/chat/messages/{message.pk}/receipts"
    few, small = queries_for(client, url)
    receipts_mark_batch([Mark(user.pk, message.pk, SEEN) for user in crowd])
    many, large = queries_for(client, url)

    assert (len(small["seenBy"]), len(large["seenBy"])) == (0, 3)
    assert many == few
