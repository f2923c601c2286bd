"""Mentions and notifications: ``@username`` parsing (``chat.mentions``), the ``Mention``
rows a send or an edit stores (``chat.services.mentions``), ``mentions`` in the message
object, the caller's unread counts and ``notify`` on the session object, the notify
setting (REST and ``session:notify``) and ``GET /api/chat/mentions``."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.mentions import mention_names, mentions_find
from chat.models import Membership, Mention, Message, SessionEvent
from chat.services.message_batch import SendRequest, messages_send_batch
from chat.services.messages import (
    message_delete,
    message_edit,
    message_send,
    messages_store,
)
from chat.services.receipts import SEEN, Mark, receipts_mark_batch
from chat.services.sessions import member_remove, session_create

pytestmark = pytest.mark.django_db


def named(*usernames):
    """A lookup answering for these (lowercased) names."""
    known = {name.lower(): name for name in usernames}
    return known.get


def spans(text, *usernames):
    return [(f.member, f.offset, f.length) for f in mentions_find(text, named(*usernames))]


# --- parsing ------------------------------------------------------------------------------


def test_a_mention_is_an_at_and_a_members_name_case_insensitively():
    assert spans("hi @Bob and @carol", "bob") == [("bob", 3, 4)]
    assert spans("@BOB", "bob") == [("bob", 0, 4)]


def test_an_address_or_a_word_before_the_at_is_not_a_mention():
    assert spans("mail bob@example.com or x@bob", "bob") == []


def test_trailing_dots_and_dashes_are_punctuation_unless_a_name_has_them():
    assert spans("thanks @bob.", "bob") == [("bob", 7, 4)]
    assert spans("ping @bob--", "bob") == [("bob", 5, 4)]
    assert spans("thanks @bob.", "bob", "bob.") == [("bob.", 7, 5)]
    assert spans("@j.doe: hi", "j.doe") == [("j.doe", 0, 6)]


def test_offsets_count_utf16_code_units_as_javascript_does():
    text = "🎉🎉 é @bob"
    ((_, offset, length),) = spans(text, "bob")
    assert (offset, length) == (7, 4)  # two emoji are two code units each
    assert text.encode("utf-16-le")[offset * 2 : (offset + length) * 2].decode("utf-16-le") == (
        "@bob"
    )


def test_names_to_look_up_include_the_shorter_spellings_and_none_without_an_at():
    assert mention_names("hey @Bob.- and @x") == {"bob.-", "bob.", "bob", "x"}
    assert mention_names("no mention here") == set()


# --- storing ------------------------------------------------------------------------------


def test_a_send_stores_its_mentions_of_members_and_renders_them(room, alice, bob, carol):
    message = message_send(author=alice, session_id=room.pk, content="@bob and @carol and @ALICE")

    rows = list(Mention.objects.order_by("offset").values_list("user_id", "offset", "length"))
    assert rows == [(bob.pk, 0, 4), (alice.pk, 20, 6)]  # carol is not a member
    from chat.serializers import render_message

    assert render_message(message)["mentions"] == [
        {"user": {"id": bob.pk, "username": "bob"}, "offset": 0, "length": 4},
        {"user": {"id": alice.pk, "username": "alice"}, "offset": 20, "length": 6},
    ]
    stored = Mention.objects.first()
    assert (stored.session_id, stored.seq) == (room.pk, message.seq)


def test_history_and_the_logged_frame_carry_the_mentions(client_for, room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="hi @bob")

    page = client_for(bob).get(f"/api/chat/sessions/{room.pk}/messages").json()
    frame = SessionEvent.objects.get(message=message).frame

    expected = [{"user": {"id": bob.pk, "username": "bob"}, "offset": 3, "length": 4}]
    assert page["messages"][0]["mentions"] == expected
    assert frame["data"]["message"]["mentions"] == expected


def test_the_assistants_own_messages_are_not_parsed(room, alice, bob):
    answer = Message(session_id=room.pk, role=Message.Role.ASSISTANT, content="@bob hello")
    question = Message(session_id=room.pk, author=alice, content="@bob what?")

    messages_store([question, answer])

    assert list(Mention.objects.values_list("message_id", flat=True)) == [question.pk]


def test_a_batch_of_sends_stores_all_its_mentions_in_one_insert(room, alice, bob, make_user):
    other = session_create(creator=bob, title="other", member_ids=[alice.pk])
    requests = [
        SendRequest(alice, room.pk, "@bob one"),
        SendRequest(bob, room.pk, "@alice two"),
        SendRequest(alice, other.pk, "@bob three @bob"),
        SendRequest(alice, room.pk, "no mention"),
    ]

    with CaptureQueriesContext(connection) as captured:
        outcomes = messages_send_batch(requests)

    assert all(isinstance(outcome, Message) for outcome in outcomes)
    assert Mention.objects.count() == 4
    mention_inserts = [q for q in captured if q["sql"].startswith('INSERT INTO "chat_mention"')]
    member_reads = [q for q in captured if 'FROM "chat_membership"' in q["sql"].split(" WHERE")[0]]
    assert len(mention_inserts) == 1
    assert len(member_reads) == 1
    assert [len(outcome.mention_list) for outcome in outcomes] == [1, 1, 2, 0]


def test_a_send_without_an_at_reads_and_writes_nothing_more(room, alice):
    with CaptureQueriesContext(connection) as captured:
        message_send(author=alice, session_id=room.pk, content="plain text, me@example.com")

    assert [q["sql"].split()[0] for q in captured] == ["UPDATE", "INSERT", "INSERT"]


def test_a_send_with_a_mention_adds_one_read_and_one_insert(room, alice):
    with CaptureQueriesContext(connection) as captured:
        message_send(author=alice, session_id=room.pk, content="hi @bob")

    assert [q["sql"].split()[0] for q in captured] == [
        "SELECT", "UPDATE", "INSERT", "INSERT", "INSERT"
    ]  # fmt: skip


def test_an_edit_replaces_the_mentions(room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="hi @bob")

    edited = message_edit(user=alice, message_id=message.pk, content="sorry, I meant @alice")

    assert list(Mention.objects.values_list("user_id", "offset")) == [(alice.pk, 15)]
    assert [m["user"]["id"] for m in edited.mention_list] == [alice.pk]
    frame = SessionEvent.objects.filter(message=message).order_by("seq").last().frame
    assert frame["event"] == "message:edited"
    assert frame["data"]["message"]["mentions"][0]["offset"] == 15


def test_a_deleted_message_shows_no_mentions_anywhere(client_for, room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="secret for @bob")

    message_delete(user=alice, message_id=message.pk)

    body = client_for(bob).get(f"/api/chat/messages/{message.pk}").json()
    assert body["mentions"] == [] and body["isDeleted"]
    new_frame = SessionEvent.objects.get(message=message, event="message:new").frame
    assert new_frame["data"]["message"]["mentions"] == []


# --- the session object ------------------------------------------------------------------


def test_the_session_object_counts_unread_messages_and_mentions(client_for, room, alice, bob):
    message_send(author=alice, session_id=room.pk, content="one")
    message_send(author=alice, session_id=room.pk, content="two @bob, @bob")
    message_send(author=bob, session_id=room.pk, content="mine @bob")
    gone = message_send(author=alice, session_id=room.pk, content="deleted @bob")
    message_delete(user=alice, message_id=gone.pk)

    (listed,) = client_for(bob).get("/api/chat/sessions").json()
    detail = client_for(bob).get(f"/api/chat/sessions/{room.pk}").json()

    for session in (listed, detail):
        assert (session["unreadCount"], session["unreadMentionCount"]) == (2, 1)
        assert session["notify"] == "mentions"


def test_reading_clears_the_counts(client_for, room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="hi @bob")
    receipts_mark_batch([Mark(bob.pk, message.pk, SEEN)])

    (listed,) = client_for(bob).get("/api/chat/sessions").json()

    assert (listed["unreadCount"], listed["unreadMentionCount"]) == (0, 0)


def test_the_session_list_counts_in_a_fixed_number_of_queries(client_for, alice, make_user):
    client = client_for(alice)

    def sessions(n):
        for i in range(n):
            other = make_user()
            session = session_create(creator=other, title=f"s{i}", member_ids=[alice.pk])
            message_send(author=other, session_id=session.pk, content="hi @alice")

    def count():
        with CaptureQueriesContext(connection) as captured:
            body = client.get("/api/chat/sessions").json()
        return len(captured), body

    sessions(2)
    few, _ = count()
    sessions(6)
    many, large = count()

    assert [s["unreadMentionCount"] for s in large] == [1] * 8
    assert many == few


# --- the notify setting --------------------------------------------------------------------


def test_notify_is_read_and_set_by_a_member(client_for, room, bob):
    client = client_for(bob)
    url = f"/api/chat/sessions/{room.pk}/notifications"

    assert client.get(url).json() == {"sessionId": str(room.pk), "notify": "mentions"}
    response = client.patch(url, {"notify": "all"}, format="json")

    assert response.status_code == 200
    assert response.json() == {"sessionId": str(room.pk), "notify": "all"}
    assert Membership.objects.get(session=room, user=bob).notify == "all"
    assert client.get(f"{url}/").json()["notify"] == "all"


@pytest.mark.parametrize("body", [{"notify": "loud"}, {}, {"notify": None}])
def test_a_bad_notify_is_400(client_for, room, bob, body):
    response = client_for(bob).patch(
        f"/api/chat/sessions/{room.pk}/notifications", body, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_notify_is_for_members_only(client_for, room, carol):
    url = f"/api/chat/sessions/{room.pk}/notifications"
    client = client_for(carol)

    assert client.get(url).status_code == 403
    assert client.patch(url, {"notify": "all"}, format="json").status_code == 403
    missing = "/api/chat/sessions/00000000-0000-0000-0000-000000000000/notifications"
    assert client.get(missing).status_code == 404
    assert client_for().get(url).status_code == 401


# --- GET /api/chat/mentions ----------------------------------------------------------------


def test_mentions_lists_messages_naming_me_newest_first(client_for, room, alice, bob, make_user):
    other = session_create(creator=alice, title="other", member_ids=[bob.pk])
    left = session_create(creator=alice, title="left", member_ids=[bob.pk])
    first = message_send(author=alice, session_id=room.pk, content="@bob first")
    second = message_send(author=alice, session_id=other.pk, content="@bob second, @bob")
    message_send(author=bob, session_id=room.pk, content="my own @bob")
    message_send(author=alice, session_id=room.pk, content="not you")
    gone = message_send(author=alice, session_id=room.pk, content="@bob deleted")
    message_delete(user=alice, message_id=gone.pk)
    message_send(author=alice, session_id=left.pk, content="@bob in a room bob left")
    member_remove(user=bob, session_id=left.pk, user_id=bob.pk)

    body = client_for(bob).get("/api/chat/mentions").json()

    assert body["total"] == 2
    assert [m["id"] for m in body["results"]] == [str(second.pk), str(first.pk)]
    assert [m["sessionTitle"] for m in body["results"]] == ["other", "general"]
    assert body["results"][0]["mentions"][1]["offset"] == 13


def test_mentions_pages_with_limit_and_offset(client_for, room, alice, bob):
    sent = [message_send(author=alice, session_id=room.pk, content=f"@bob {i}") for i in range(5)]
    client = client_for(bob)

    page = client.get("/api/chat/mentions?limit=2&offset=1").json()

    assert page["total"] == 5
    assert [m["id"] for m in page["results"]] == [str(sent[3].pk), str(sent[2].pk)]
    assert client.get("/api/chat/mentions?limit=0").status_code == 400
    assert client.get("/api/chat/mentions?offset=99").json() == {"results": [], "total": 5}


# --- pages ----------------------------------------------------------------------------------


def test_the_session_list_shows_an_at_badge_for_unread_mentions(client, room, alice, bob):
    message_send(author=alice, session_id=room.pk, content="@bob one")
    message_send(author=alice, session_id=room.pk, content="two")
    client.force_login(bob)

    html = client.get("/").content.decode()

    assert 'class="badge badge-mention" title="1 unread mention">@1<' in html
    assert 'class="badge badge-unread" title="2 unread">2<' in html
    assert 'id="notify-enable" hidden>Enable notifications<' in html


def test_the_mentions_page_links_each_mention_to_its_message(client, room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="look at this @bob")
    message_send(author=alice, session_id=room.pk, content="not for bob")
    client.force_login(bob)

    response = client.get("/mentions/")
    html = response.content.decode()

    assert response.status_code == 200
    assert f'href="/rooms/{room.pk}/#message-{message.pk}"' in html
    assert "<strong>alice:</strong> look at this @bob" in html
    assert "not for bob" not in html
    assert client.get("/mentions").status_code == 307


def test_the_mentions_page_is_for_logged_in_users(client):
    response = client.get("/mentions/")

    assert response.status_code == 302 and response.url.startswith("/login/")


def test_the_room_knows_the_readers_notify_setting(client, room, bob):
    Membership.objects.filter(session=room, user=bob).update(notify="all")
    client.force_login(bob)

    html = client.get(f"/rooms/{room.pk}/").content.decode()

    assert '"notify": "all"' in html
    assert 'id="notify-select"' in html


def test_the_mentions_page_reads_in_a_fixed_number_of_queries(client_for, room, alice, bob):
    client = client_for(bob)

    def count():
        with CaptureQueriesContext(connection) as captured:
            body = client.get("/api/chat/mentions").json()
        return len(captured), body

    message_send(author=alice, session_id=room.pk, content="@bob first")
    few, _ = count()
    for i in range(8):
        other = session_create(creator=alice, title=f"s{i}", member_ids=[bob.pk])
        message_send(author=alice, session_id=other.pk, content=f"@bob in s{i}")
    many, body = count()

    assert body["total"] == 9 and len({m["sessionTitle"] for m in body["results"]}) == 9
    assert many == few
