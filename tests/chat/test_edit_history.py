"""Edit history: members read every version of a message's text (``GET
/api/chat/messages/:id/history``, from its ``MessageEdit`` rows); once the message is
deleted no version of its text is anywhere a member can read (REST, search, replay),
while staff still see the rows in the admin."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat.models import MessageEdit, SessionEvent
from chat.selectors import message_versions
from chat.services.messages import message_delete, message_edit, message_restore, message_send
from chat.services.pins import message_pin
from chat.services.sessions import session_create

from .conftest import request

pytestmark = pytest.mark.django_db(transaction=True)


def user_of(user) -> dict:
    return {"id": user.pk, "username": user.username}


def history(client, message) -> dict:
    response = client.get(f"/api/chat/messages/{message.pk}/history")
    assert response.status_code == 200, response.content
    return response.json()


def test_versions_are_oldest_first_with_the_current_text_last(room, alice):
    message = message_send(author=alice, session_id=room.pk, content="draft one")
    message_edit(user=alice, message_id=message.pk, content="draft two")
    current = message_edit(user=alice, message_id=message.pk, content="final")

    found = message_versions(user=alice, message_id=message.pk)

    assert found.message_id == message.pk
    assert [v.content for v in found.versions] == ["draft one", "draft two", "final"]
    assert found.versions[0].edited_by is None and found.versions[0].at == message.created_at
    edits = list(MessageEdit.objects.order_by("edited_at"))
    assert found.versions[1].at == edits[0].edited_at, "written by the first edit"
    assert [v.edited_by for v in found.versions[1:]] == [alice, alice]
    assert found.versions[-1].at == current.edited_at


def test_rest_history_shape(client_for, room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="v1")
    message_edit(user=alice, message_id=message.pk, content="v2")

    body = history(client_for(bob), message)

    assert body["messageId"] == str(message.pk)
    first, second = body["versions"]
    assert first["content"] == "v1" and first["editedBy"] is None
    assert second["content"] == "v2" and second["editedBy"] == user_of(alice)
    assert first["at"].endswith("Z") and first["at"] < second["at"]


def test_an_unedited_message_has_one_version(client_for, room, alice):
    message = message_send(author=alice, session_id=room.pk, content="as sent")

    body = history(client_for(alice), message)

    assert [v["content"] for v in body["versions"]] == ["as sent"]
    assert body["versions"][0]["editedBy"] is None


def test_history_is_for_members_only(client_for, room, alice, carol):
    message = message_send(author=alice, session_id=room.pk, content="private")

    assert client_for(carol).get(f"/api/chat/messages/{message.pk}/history").status_code == 403
    assert client_for().get(f"/api/chat/messages/{message.pk}/history").status_code == 401
    missing = "00000000-0000-0000-0000-000000000000"
    assert client_for(alice).get(f"/api/chat/messages/{missing}/history/").status_code == 404


def test_a_deleted_message_has_no_versions_and_no_text_anywhere_a_member_reads(
    client_for, room, alice, bob
):
    message = message_send(author=alice, session_id=room.pk, content="my secret v1")
    message_edit(user=alice, message_id=message.pk, content="my secret v2")
    message_pin(user=bob, message_id=message.pk)
    message_delete(user=alice, message_id=message.pk)
    client = client_for(bob)

    assert history(client, message) == {"messageId": str(message.pk), "versions": []}
    reads = [
        client.get(f"/api/chat/messages/{message.pk}"),
        client.get(f"/api/chat/sessions/{room.pk}/messages"),
        client.get(f"/api/chat/sessions/{room.pk}/search", {"query": "secret"}),
        client.get(f"/api/chat/sessions/{room.pk}/pins"),
    ]
    for response in reads:
        assert response.status_code == 200
        assert "secret" not in response.content.decode(), response.request["PATH_INFO"]
    # The log: the message:new, message:edited and message:pinned frames are blanked.
    events = list(SessionEvent.objects.order_by("seq").values_list("event", "frame"))
    assert [name for name, _ in events] == [
        "message:new",
        "message:edited",
        "message:pinned",
        "message:deleted",
    ]
    for _, frame in events:
        assert "secret" not in str(frame)
    # Moderators keep the rows.
    assert list(MessageEdit.objects.values_list("previous_content", flat=True)) == ["my secret v1"]


def test_a_restored_message_has_its_history_again(client_for, room, alice, make_user):
    moderator = make_user(is_staff=True)
    message = message_send(author=alice, session_id=room.pk, content="before")
    message_edit(user=alice, message_id=message.pk, content="after")
    message_delete(user=alice, message_id=message.pk)

    message_restore(moderator=moderator, message_id=message.pk)

    body = history(client_for(alice), message)
    assert [v["content"] for v in body["versions"]] == ["before", "after"]


def test_the_schema_describes_the_history_endpoint(client):
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]

    assert "get" in paths["/api/chat/messages/{message_id}/history/"]


def test_staff_see_a_deleted_messages_edits_in_the_admin(room, alice, make_user):
    staff = make_user(is_staff=True, is_superuser=True)
    message = message_send(author=alice, session_id=room.pk, content="kept for moderators")
    message_edit(user=alice, message_id=message.pk, content="changed")
    message_delete(user=alice, message_id=message.pk)
    browser = Client()
    browser.force_login(staff)

    page = browser.get(f"/admin/chat/message/{message.pk}/change/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "edit history" in text.lower()
    assert "kept for moderators" in text


@pytest.fixture
def make_room(alice, bob):
    return database_sync_to_async(
        lambda: session_create(creator=alice, title="general", member_ids=[bob.pk])
    )


async def test_a_replay_after_the_delete_carries_no_version_of_the_text(
    ws_connect, make_room, alice, bob
):
    room = await make_room()
    message = await database_sync_to_async(message_send)(
        author=alice, session_id=room.pk, content="first words"
    )
    await database_sync_to_async(message_edit)(
        user=alice, message_id=message.pk, content="second words"
    )
    b = await ws_connect(bob)
    before = await request(b, "session:join", {"sessionId": str(room.pk), "lastSeq": 0})
    await database_sync_to_async(message_delete)(user=alice, message_id=message.pk)

    after = await request(b, "session:join", {"sessionId": str(room.pk), "lastSeq": 0}, ref="r2")

    assert "second words" in str(before["data"]["missed"]), "the edit was replayed live"
    missed = after["data"]["missed"]
    assert [f["event"] for f in missed] == ["message:new", "message:edited", "message:deleted"]
    assert "words" not in str(missed)
