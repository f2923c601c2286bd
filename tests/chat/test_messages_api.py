"""The messages REST doors: send, history, threads, read/edit/delete, reactions, search and
presence, with the status codes of CONTRACT section 2 and no 500 on any bad input."""

import uuid

import pytest

from chat.models import ChatSession, Membership, Message, MessageEdit, Reaction, SessionEvent
from chat.services.messages import message_delete, message_send
from chat.services.reactions import reaction_toggle
from chat.services.sessions import session_create

pytestmark = pytest.mark.django_db

MESSAGE_KEYS = {
    "id", "sessionId", "seq", "author", "agentId", "role", "content", "metadata", "tokens",
    "parentMessageId", "replyCount", "isEdited", "editedAt", "isDeleted", "deletedAt",
    "createdAt", "updatedAt", "reactions", "attachments", "clientId", "isBot", "pinnedAt",
    "pinnedBy", "mentions",
}  # fmt: skip


@pytest.fixture
def dave(make_user, room):
    """A plain member of ``room``, next to bob."""
    user = make_user("dave")
    Membership.objects.create(session=room, user=user)
    return user


def send(client, session, content="hello", **extra):
    body = {"sessionId": str(session.pk), "content": content, **extra}
    return client.post("/api/chat/messages", body, format="json")


def post_messages(room, n, *, author):
    """``n`` messages ``m1``..``mn`` sent by the service, oldest first."""
    return [
        message_send(author=author, session_id=room.pk, content=f"m{i}") for i in range(1, n + 1)
    ]


def contents(messages):
    return [m["content"] for m in messages]


def nothing_written(room):
    room.refresh_from_db()
    return Message.objects.count() == 0 and SessionEvent.objects.count() == 0 and room.last_seq == 0


# --- send ------------------------------------------------------------------------------------


def test_send_returns_201_with_every_field_of_a_message_in_camel_case(client_for, room, alice):
    response = send(client_for(alice), room, "hello there", clientId="c-1")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == MESSAGE_KEYS
    stored = Message.objects.get()
    assert body["id"] == str(stored.pk)
    assert body["sessionId"] == str(room.pk)
    assert body["seq"] == 1
    assert body["author"] == {"id": alice.pk, "username": "alice"}
    assert body["role"] == "user"
    assert body["content"] == "hello there"
    assert body["clientId"] == "c-1"
    assert (body["agentId"], body["tokens"], body["parentMessageId"]) == (None, None, None)
    assert (body["metadata"], body["reactions"], body["attachments"]) == ({}, [], [])
    assert (body["replyCount"], body["isEdited"], body["isDeleted"]) == (0, False, False)
    assert (body["editedAt"], body["deletedAt"]) == (None, None)
    assert body["createdAt"].endswith("Z") and body["updatedAt"].endswith("Z")
    assert SessionEvent.objects.get().frame["data"]["message"] == body


def test_send_with_a_trailing_slash(client_for, room, alice):
    response = client_for(alice).post(
        "/api/chat/messages/", {"sessionId": str(room.pk), "content": "hi"}, format="json"
    )

    assert response.status_code == 201


def test_a_repeated_client_id_returns_the_first_message_and_stores_one(client_for, room, alice):
    client = client_for(alice)
    first = send(client, room, "once", clientId="same")
    again = send(client, room, "once", clientId="same")

    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert Message.objects.count() == 1 and SessionEvent.objects.count() == 1


def test_the_same_client_id_from_two_authors_is_two_messages(client_for, room, alice, bob):
    send(client_for(alice), room, clientId="same")
    send(client_for(bob), room, clientId="same")

    assert Message.objects.count() == 2


def test_a_reply_names_its_parent_and_counts_on_it(client_for, room, alice, bob):
    root = send(client_for(alice), room, "topic").json()

    reply = send(client_for(bob), room, "answer", parentMessageId=root["id"])

    assert reply.status_code == 201
    assert reply.json()["parentMessageId"] == root["id"]
    assert Message.objects.get(pk=root["id"]).reply_count == 1


def test_a_reply_to_a_message_of_another_session_is_400(client_for, room, alice):
    elsewhere = session_create(creator=alice, title="elsewhere")
    foreign = message_send(author=alice, session_id=elsewhere.pk, content="there")

    response = send(client_for(alice), room, "here", parentMessageId=str(foreign.pk))

    assert response.status_code == 400
    assert "parentMessageId" in response.json()["details"]
    assert not Message.objects.filter(session=room).exists()


@pytest.mark.parametrize(
    ("who", "status"), [("carol", 403), ("anonymous", 401)], ids=["outsider", "anonymous"]
)
def test_only_members_send(client_for, room, carol, who, status):
    response = send(client_for(carol if who == "carol" else None), room)

    assert response.status_code == status
    assert nothing_written(room)


def test_sending_to_an_unknown_session_is_404(client_for, alice):
    response = client_for(alice).post(
        "/api/chat/messages", {"sessionId": str(uuid.uuid4()), "content": "hi"}, format="json"
    )

    assert response.status_code == 404
    assert Message.objects.count() == 0


def test_content_of_exactly_the_maximum_length_is_accepted(client_for, room, alice, settings):
    response = send(client_for(alice), room, "x" * settings.MESSAGE_MAX_LENGTH)

    assert response.status_code == 201


def test_the_maximum_length_follows_the_setting(client_for, room, alice, settings):
    settings.MESSAGE_MAX_LENGTH = 5

    assert send(client_for(alice), room, "123456").status_code == 400
    assert send(client_for(alice), room, "12345").status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"content": 123},
        {"content": ["hi"]},
        {"content": None},
        {"content": True},
        {"content": ""},
        {"content": "   \n\t "},
        {"content": "x" * 10001},
        {},
        {"sessionId": "x"},
        {"sessionId": 5},
        {"sessionId": None},
        {"parentMessageId": "x"},
        {"parentMessageId": str(uuid.uuid4())},
        {"clientId": "c" * 101},
        {"clientId": {"a": 1}},
    ],
    ids=[
        "content-int",
        "content-list",
        "content-null",
        "content-bool",
        "content-empty",
        "content-blank",
        "content-too-long",
        "no-content",
        "session-not-uuid",
        "session-int",
        "session-null",
        "parent-not-uuid",
        "parent-unknown",
        "client-id-too-long",
        "client-id-dict",
    ],
)
def test_send_refuses_bad_input_with_400_and_writes_nothing(client_for, room, alice, body):
    payload = {"sessionId": str(room.pk), **body}
    if "content" not in body and body:
        payload["content"] = "hi"

    response = client_for(alice).post("/api/chat/messages", payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert nothing_written(room)


@pytest.mark.parametrize("raw", ["{not json", '"just a string"', "[1, 2]", "", "null"], ids=repr)
def test_send_refuses_a_body_that_is_not_a_json_object(client_for, room, alice, raw):
    response = client_for(alice).post(
        "/api/chat/messages", data=raw, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert nothing_written(room)


# --- history ---------------------------------------------------------------------------------


def history(client, room, **params):
    response = client.get(f"/api/chat/sessions/{room.pk}/messages", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_history_is_oldest_first_with_the_total(client_for, room, alice):
    post_messages(room, 5, author=alice)

    page = history(client_for(alice), room)

    assert contents(page["messages"]) == ["m1", "m2", "m3", "m4", "m5"]
    assert [m["seq"] for m in page["messages"]] == [1, 2, 3, 4, 5]
    assert page["total"] == 5
    assert set(page["messages"][0]) == MESSAGE_KEYS


def test_history_limit_and_offset_count_back_from_the_newest(client_for, room, alice):
    post_messages(room, 5, author=alice)
    client = client_for(alice)

    assert contents(history(client, room, limit=2)["messages"]) == ["m4", "m5"]
    assert contents(history(client, room, limit=2, offset=2)["messages"]) == ["m2", "m3"]
    assert contents(history(client, room, limit=2, offset=4)["messages"]) == ["m1"]
    assert history(client, room, limit=2, offset=9) == {"messages": [], "total": 5}


def test_history_after_seq_catches_up_oldest_first(client_for, room, alice):
    post_messages(room, 5, author=alice)
    client = client_for(alice)

    assert contents(history(client, room, afterSeq=2)["messages"]) == ["m3", "m4", "m5"]
    caught_up = history(client, room, afterSeq=2, limit=2)
    assert contents(caught_up["messages"]) == ["m3", "m4"]
    assert history(client, room, afterSeq=5)["messages"] == []


def test_history_before_seq_scrolls_back_by_keyset(client_for, room, alice):
    post_messages(room, 5, author=alice)
    client = client_for(alice)

    assert contents(history(client, room, beforeSeq=4, limit=2)["messages"]) == ["m2", "m3"]
    assert contents(history(client, room, beforeSeq=2)["messages"]) == ["m1"]
    assert history(client, room, beforeSeq=1)["messages"] == []


def test_history_total_is_the_whole_timeline_whatever_the_cursors(client_for, room, alice):
    post_messages(room, 5, author=alice)
    client = client_for(alice)

    pages = [
        history(client, room),
        history(client, room, limit=2, offset=2),
        history(client, room, beforeSeq=3),
        history(client, room, afterSeq=4),
        history(client, room, afterSeq=5),
    ]

    assert [len(page["messages"]) for page in pages] == [5, 2, 2, 1, 0]
    assert [page["total"] for page in pages] == [5] * 5


def test_a_thread_total_is_all_its_replies_whatever_the_cursors(client_for, room, alice, bob):
    root, _ = post_messages(room, 2, author=alice)
    replies = [
        message_send(author=bob, session_id=room.pk, content=f"r{i}", parent_id=root.pk)
        for i in range(3)
    ]
    client = client_for(bob)

    pages = [
        history(client, room, parentMessageId=str(root.pk), **cursor)
        for cursor in (
            {},
            {"beforeSeq": replies[1].seq},
            {"afterSeq": replies[2].seq},
            {"limit": 1, "offset": 1},
        )
    ]

    assert [len(page["messages"]) for page in pages] == [3, 1, 0, 1]
    assert [page["total"] for page in pages] == [3] * 4


def test_a_thread_of_another_session_lists_and_counts_nothing(client_for, room, alice, bob):
    elsewhere = session_create(creator=alice, title="elsewhere", member_ids=[bob.pk])
    root = message_send(author=alice, session_id=elsewhere.pk, content="topic")
    message_send(author=bob, session_id=elsewhere.pk, content="re", parent_id=root.pk)

    page = history(client_for(alice), room, parentMessageId=str(root.pk))

    assert page == {"messages": [], "total": 0}


def test_the_timeline_leaves_replies_to_their_thread(client_for, room, alice, bob):
    root, _ = post_messages(room, 2, author=alice)
    message_send(author=bob, session_id=room.pk, content="r1", parent_id=root.pk)
    message_send(author=alice, session_id=room.pk, content="r2", parent_id=root.pk)
    client = client_for(bob)

    timeline = history(client, room)
    thread = history(client, room, parentMessageId=str(root.pk))

    assert contents(timeline["messages"]) == ["m1", "m2"] and timeline["total"] == 2
    assert timeline["messages"][0]["replyCount"] == 2
    assert contents(thread["messages"]) == ["r1", "r2"] and thread["total"] == 2
    assert {m["parentMessageId"] for m in thread["messages"]} == {str(root.pk)}


def test_history_shows_a_deleted_message_as_a_tombstone(client_for, room, alice, bob):
    first, _ = post_messages(room, 2, author=alice)
    reaction_toggle(user=bob, message_id=first.pk, emoji="👍")
    message_delete(user=alice, message_id=first.pk)

    page = history(client_for(bob), room)

    tombstone, kept = page["messages"]
    assert tombstone["id"] == str(first.pk)
    assert tombstone["content"] == "" and tombstone["isDeleted"] is True
    assert tombstone["deletedAt"] is not None and tombstone["reactions"] == []
    assert kept["content"] == "m2"
    assert page["total"] == 2


@pytest.mark.parametrize(
    ("who", "status"), [("carol", 403), ("anonymous", 401)], ids=["outsider", "anonymous"]
)
def test_history_is_for_members_only(client_for, room, carol, who, status):
    response = client_for(carol if who == "carol" else None).get(
        f"/api/chat/sessions/{room.pk}/messages"
    )

    assert response.status_code == status


def test_history_of_an_unknown_session_is_404(client_for, alice):
    assert client_for(alice).get(f"/api/chat/sessions/{uuid.uuid4()}/messages").status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": "abc"},
        {"limit": -1},
        {"limit": 201},
        {"offset": -1},
        {"offset": "x"},
        {"offset": 2**64},
        {"afterSeq": -1},
        {"afterSeq": 2**64},
        {"beforeSeq": 0},
        {"beforeSeq": "soon"},
        {"parentMessageId": "x"},
    ],
    ids=repr,
)
def test_history_refuses_bad_parameters_with_400(client_for, room, alice, params):
    response = client_for(alice).get(f"/api/chat/sessions/{room.pk}/messages", params)

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


# --- thread ----------------------------------------------------------------------------------


def test_thread_lists_the_replies_oldest_first(client_for, room, alice, bob):
    root = message_send(author=alice, session_id=room.pk, content="topic")
    message_send(author=alice, session_id=room.pk, content="unrelated")
    for text in ("r1", "r2", "r3"):
        message_send(author=bob, session_id=room.pk, content=text, parent_id=root.pk)

    response = client_for(alice).get(f"/api/chat/messages/{root.pk}/thread/")

    assert response.status_code == 200
    assert contents(response.json()) == ["r1", "r2", "r3"]
    assert set(response.json()[0]) == MESSAGE_KEYS


@pytest.mark.parametrize(
    ("who", "status"), [("carol", 403), ("anonymous", 401), ("alice-unknown", 404)]
)
def test_thread_is_for_members_of_known_messages(client_for, room, alice, carol, who, status):
    root = message_send(author=alice, session_id=room.pk, content="topic")
    client = client_for({"carol": carol, "anonymous": None, "alice-unknown": alice}[who])
    target = uuid.uuid4() if who == "alice-unknown" else root.pk

    assert client.get(f"/api/chat/messages/{target}/thread").status_code == status


# --- one message: read, edit, delete ---------------------------------------------------------


@pytest.fixture
def bobs_message(room, bob):
    return message_send(author=bob, session_id=room.pk, content="original")


def _client(who, client_for, users):
    return client_for(users[who]) if who != "anonymous" else client_for()


@pytest.fixture
def users(alice, bob, carol, dave):
    return {"owner": alice, "author": bob, "member": dave, "outsider": carol}


@pytest.mark.parametrize(
    ("who", "status"),
    [("author", 200), ("member", 200), ("owner", 200), ("outsider", 403), ("anonymous", 401)],
)
def test_get_message_by_role(client_for, users, bobs_message, who, status):
    response = _client(who, client_for, users).get(f"/api/chat/messages/{bobs_message.pk}")

    assert response.status_code == status
    if status == 200:
        assert response.json()["content"] == "original"
        assert set(response.json()) == MESSAGE_KEYS


@pytest.mark.parametrize(
    ("who", "status"),
    [("author", 200), ("member", 403), ("owner", 403), ("outsider", 403), ("anonymous", 401)],
)
def test_put_message_by_role(client_for, users, bobs_message, who, status):
    response = _client(who, client_for, users).put(
        f"/api/chat/messages/{bobs_message.pk}/", {"content": "changed"}, format="json"
    )

    assert response.status_code == status
    bobs_message.refresh_from_db()
    if status == 200:
        body = response.json()
        assert body["content"] == "changed" and body["isEdited"] is True
        assert body["editedAt"] is not None and body["seq"] == bobs_message.seq
        assert bobs_message.content == "changed"
    else:
        assert bobs_message.content == "original" and not bobs_message.is_edited
        assert MessageEdit.objects.count() == 0
        assert SessionEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("who", "status"),
    [("author", 200), ("owner", 200), ("member", 403), ("outsider", 403), ("anonymous", 401)],
)
def test_delete_message_by_role(client_for, users, bobs_message, who, status):
    response = _client(who, client_for, users).delete(f"/api/chat/messages/{bobs_message.pk}")

    assert response.status_code == status
    bobs_message.refresh_from_db()
    assert bobs_message.is_deleted == (status == 200)
    if status == 200:
        assert response.json()["isDeleted"] is True and response.json()["content"] == ""
        assert bobs_message.content == "original", "the delete is soft"


@pytest.mark.parametrize("method", ["get", "put", "delete"])
@pytest.mark.parametrize("message_id", [str(uuid.uuid4()), "-" * 36, "nope"])
def test_an_unknown_or_malformed_message_id_is_404(client_for, alice, method, message_id):
    response = getattr(client_for(alice), method)(
        f"/api/chat/messages/{message_id}", {"content": "x"}, format="json"
    )

    assert response.status_code == 404


@pytest.mark.parametrize(
    "body",
    [{"content": ""}, {"content": 123}, {"content": "x" * 10001}, {}, {"content": None}],
    ids=["empty", "int", "too-long", "missing", "null"],
)
def test_put_refuses_bad_content_and_changes_nothing(client_for, bob, bobs_message, body):
    response = client_for(bob).put(f"/api/chat/messages/{bobs_message.pk}", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    bobs_message.refresh_from_db()
    assert bobs_message.content == "original" and MessageEdit.objects.count() == 0


def test_put_refuses_garbage_json(client_for, bob, bobs_message):
    response = client_for(bob).put(
        f"/api/chat/messages/{bobs_message.pk}", data="{{", content_type="application/json"
    )

    assert response.status_code == 400


def test_a_deleted_message_cannot_be_edited(client_for, bob, bobs_message):
    message_delete(user=bob, message_id=bobs_message.pk)

    response = client_for(bob).put(
        f"/api/chat/messages/{bobs_message.pk}", {"content": "back"}, format="json"
    )

    assert response.status_code == 400
    bobs_message.refresh_from_db()
    assert bobs_message.content == "original"


def test_deleting_twice_is_a_no_op_the_second_time(client_for, bob, bobs_message):
    client = client_for(bob)

    assert client.delete(f"/api/chat/messages/{bobs_message.pk}").status_code == 200
    assert client.delete(f"/api/chat/messages/{bobs_message.pk}/").status_code == 200
    assert SessionEvent.objects.filter(event="message:deleted").count() == 1


# --- reactions -------------------------------------------------------------------------------


def reactions_url(message):
    return f"/api/chat/messages/{message.pk}/reactions"


def test_posting_a_reaction_toggles_it(client_for, alice, bob, bobs_message):
    client = client_for(alice)

    added = client.post(reactions_url(bobs_message), {"emoji": "👍"}, format="json")
    client_for(bob).post(reactions_url(bobs_message) + "/", {"emoji": "👍"}, format="json")
    removed = client.post(reactions_url(bobs_message), {"emoji": "👍"}, format="json")

    assert added.status_code == 200
    assert added.json() == {
        "action": "added",
        "reactions": [{"emoji": "👍", "count": 1, "userIds": [alice.pk]}],
    }
    assert removed.json() == {
        "action": "removed",
        "reactions": [{"emoji": "👍", "count": 1, "userIds": [bob.pk]}],
    }


def test_get_reactions_lists_each_emoji_with_its_users(client_for, alice, bob, bobs_message):
    reaction_toggle(user=alice, message_id=bobs_message.pk, emoji="👍")
    reaction_toggle(user=bob, message_id=bobs_message.pk, emoji="🎉")
    reaction_toggle(user=bob, message_id=bobs_message.pk, emoji="👍")

    response = client_for(bob).get(reactions_url(bobs_message) + "/")

    assert response.status_code == 200
    assert response.json() == [
        {"emoji": "👍", "count": 2, "userIds": [alice.pk, bob.pk]},
        {"emoji": "🎉", "count": 1, "userIds": [bob.pk]},
    ]


@pytest.mark.parametrize(
    ("who", "status"), [("outsider", 403), ("anonymous", 401)], ids=["outsider", "anonymous"]
)
def test_reactions_are_for_members_only(client_for, users, bobs_message, who, status):
    client = _client(who, client_for, users)

    assert client.get(reactions_url(bobs_message)).status_code == status
    assert client.post(reactions_url(bobs_message), {"emoji": "👍"}).status_code == status
    assert Reaction.objects.count() == 0


@pytest.mark.parametrize(
    "body", [{"emoji": ""}, {"emoji": "x" * 65}, {}, {"emoji": None}, {"emoji": ["👍"]}], ids=repr
)
def test_a_bad_emoji_is_400(client_for, alice, bobs_message, body):
    response = client_for(alice).post(reactions_url(bobs_message), body, format="json")

    assert response.status_code == 400
    assert Reaction.objects.count() == 0


def test_a_deleted_message_takes_no_reactions(client_for, alice, bob, bobs_message):
    message_delete(user=bob, message_id=bobs_message.pk)

    response = client_for(alice).post(reactions_url(bobs_message), {"emoji": "👍"}, format="json")

    assert response.status_code == 400
    assert Reaction.objects.count() == 0


def test_a_deleted_message_lists_no_reactions_like_its_tombstone(
    client_for, alice, bob, bobs_message
):
    reaction_toggle(user=alice, message_id=bobs_message.pk, emoji="👍")
    message_delete(user=bob, message_id=bobs_message.pk)

    response = client_for(alice).get(reactions_url(bobs_message))

    assert response.status_code == 200
    assert response.json() == []


def test_reactions_of_an_unknown_message_are_404(client_for, alice):
    assert client_for(alice).get(f"/api/chat/messages/{uuid.uuid4()}/reactions").status_code == 404


# --- search ----------------------------------------------------------------------------------


def search(client, room, **params):
    return client.get(f"/api/chat/sessions/{room.pk}/search", params)


@pytest.fixture
def searchable(room, alice, bob):
    texts = ["the quick brown fox", "a lazy dog sleeps", "Quick lunch today", "gone quick"]
    sent = [message_send(author=alice, session_id=room.pk, content=t) for t in texts]
    message_delete(user=alice, message_id=sent[-1].pk)
    elsewhere = session_create(creator=alice, title="elsewhere", member_ids=[bob.pk])
    message_send(author=alice, session_id=elsewhere.pk, content="quick elsewhere")
    return sent


def test_search_finds_messages_with_the_word_in_this_session_only(
    client_for, alice, room, searchable
):
    response = search(client_for(alice), room, query="quick")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "total"}
    assert body["total"] == 2
    assert sorted(contents(body["results"])) == ["Quick lunch today", "the quick brown fox"]
    assert set(body["results"][0]) == MESSAGE_KEYS


def test_search_needs_every_word(client_for, alice, room, searchable):
    body = search(client_for(alice), room, query="quick fox").json()

    assert contents(body["results"]) == ["the quick brown fox"] and body["total"] == 1


def test_search_pages_with_limit_and_offset_and_keeps_the_total(
    client_for, alice, room, searchable
):
    client = client_for(alice)
    first = search(client, room, query="quick", limit=1).json()
    second = search(client, room, query="quick", limit=1, offset=1).json()

    assert (first["total"], second["total"]) == (2, 2)
    assert len(first["results"]) == len(second["results"]) == 1
    assert first["results"][0]["id"] != second["results"][0]["id"]


def test_search_lists_the_newest_match_first_however_well_older_ones_match(client_for, alice, room):
    for text in ["quick quick quick", "quick once", "not this one", "quick, the newest"]:
        message_send(author=alice, session_id=room.pk, content=text)

    body = search(client_for(alice), room, query="quick").json()

    assert contents(body["results"]) == ["quick, the newest", "quick once", "quick quick quick"]


@pytest.fixture
def haystack(room, alice):
    """1,005 messages holding "needle", seqs 1 to 1,005, stored in one statement: search
    reads rows, however they were sent."""
    Message.objects.bulk_create(
        Message(session=room, seq=seq, author=alice, content=f"needle {seq}")
        for seq in range(1, 1006)
    )


def test_search_total_is_exact_up_to_1000_and_capped_there(client_for, alice, room, haystack):
    body = search(client_for(alice), room, query="needle", limit=3).json()

    assert body["total"] == 1000
    assert [m["seq"] for m in body["results"]] == [1005, 1004, 1003]


def test_search_serves_results_only_within_the_first_1000_matches(
    client_for, alice, room, haystack
):
    client = client_for(alice)

    last = search(client, room, query="needle", limit=20, offset=990).json()
    past = search(client, room, query="needle", offset=1000).json()

    assert [m["seq"] for m in last["results"]] == list(range(15, 5, -1))
    assert past == {"results": [], "total": 1000}


def test_search_with_no_match_is_empty(client_for, alice, room, searchable):
    assert search(client_for(alice), room, query="zebra").json() == {"results": [], "total": 0}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"query": ""},
        {"query": "   "},
        {"query": "x" * 201},
        {"query": "a", "limit": 0},
        {"query": "a", "limit": "abc"},
        {"query": "a", "limit": 101},
        {"query": "a", "offset": -1},
        {"query": "a", "offset": 2**64},
    ],
    ids=repr,
)
def test_search_refuses_bad_parameters_with_400(client_for, alice, room, params):
    response = search(client_for(alice), room, **params)

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("query", ["'", '"', "&|!", "a:*", "-", "()", "or", "\\", "%_"])
def test_search_takes_any_text_without_failing(client_for, alice, room, searchable, query):
    response = search(client_for(alice), room, query=query)

    assert response.status_code == 200
    assert response.json()["total"] == len(response.json()["results"])


@pytest.mark.parametrize(
    ("who", "status"), [("carol", 403), ("anonymous", 401)], ids=["outsider", "anonymous"]
)
def test_search_is_for_members_only(client_for, room, carol, who, status):
    response = search(client_for(carol if who == "carol" else None), room, query="quick")

    assert response.status_code == status


# --- presence --------------------------------------------------------------------------------


def test_presence_lists_every_member_offline_until_they_connect(client_for, room, alice, bob):
    response = client_for(bob).get(f"/api/chat/sessions/{room.pk}/presence")

    assert response.status_code == 200
    assert response.json() == [
        {"user": {"id": alice.pk, "username": "alice"}, "status": "offline", "lastSeenAt": None},
        {"user": {"id": bob.pk, "username": "bob"}, "status": "offline", "lastSeenAt": None},
    ]


@pytest.mark.parametrize(
    ("who", "status"), [("carol", 403), ("anonymous", 401)], ids=["outsider", "anonymous"]
)
def test_presence_is_for_members_only(client_for, room, carol, who, status):
    response = client_for(carol if who == "carol" else None).get(
        f"/api/chat/sessions/{room.pk}/presence/"
    )

    assert response.status_code == status


# --- every route, both ways ------------------------------------------------------------------


@pytest.mark.parametrize("slash", ["", "/"], ids=["no-slash", "slash"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/chat/sessions",
        "/api/chat/sessions/{session}",
        "/api/chat/sessions/{session}/messages",
        "/api/chat/sessions/{session}/search?query=hi",
        "/api/chat/sessions/{session}/presence",
        "/api/chat/messages/{message}",
        "/api/chat/messages/{message}/reactions",
        "/api/chat/messages/{message}/thread",
        "/api/auth/me",
    ],
)
def test_every_get_route_answers_with_and_without_a_trailing_slash(
    client_for, room, alice, path, slash
):
    message = message_send(author=alice, session_id=room.pk, content="hi")
    url = path.format(session=room.pk, message=message.pk)
    url = url.replace("?", f"{slash}?") if "?" in url else url + slash

    assert client_for(alice).get(url).status_code == 200


@pytest.mark.parametrize("slash", ["", "/"], ids=["no-slash", "slash"])
def test_write_routes_answer_with_and_without_a_trailing_slash(
    client_for, room, alice, bob, carol, slash
):
    client = client_for(alice)
    base = f"/api/chat/sessions/{room.pk}"
    message = send(client, room, "hi").json()

    assert client.patch(base + slash, {"title": "t"}, format="json").status_code == 200
    assert client.post(f"{base}/members{slash}", {"userId": carol.pk}).status_code == 201
    assert client.delete(f"{base}/members/{carol.pk}{slash}").status_code == 204
    assert (
        client.put(
            f"/api/chat/messages/{message['id']}{slash}", {"content": "edit"}, format="json"
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/api/chat/messages/{message['id']}/reactions{slash}", {"emoji": "👍"}, format="json"
        ).status_code
        == 200
    )
    assert client.delete(f"/api/chat/messages/{message['id']}{slash}").status_code == 200
    assert client.delete(base + slash).status_code == 204
    assert not ChatSession.objects.filter(pk=room.pk).exists()


def test_an_unknown_api_path_answers_json_404(client_for, alice):
    response = client_for(alice).get("/api/chat/nothing-here/at-all")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
