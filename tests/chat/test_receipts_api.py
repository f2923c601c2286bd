"""``GET /api/chat/messages/:id/receipts``: who saw a message and who has it delivered, from
the members' watermarks, for members only."""

import uuid

import pytest

from chat.models import Membership
from chat.services.messages import message_send
from chat.services.receipts import DELIVERED, SEEN, Mark, receipts_mark_batch

pytestmark = pytest.mark.django_db


def url(message_id) -> str:
    return f"/api/chat/messages/{message_id}/receipts"


def test_seen_by_and_delivered_to_come_from_the_watermarks(client_for, room, alice, bob, make_user):
    dave, erin, frank = make_user("dave"), make_user("erin"), make_user("frank")
    Membership.objects.bulk_create([Membership(session=room, user=u) for u in (dave, erin, frank)])
    message = message_send(author=alice, session_id=room.pk, content="hello")
    later = message_send(author=alice, session_id=room.pk, content="later")
    receipts_mark_batch(
        [
            Mark(bob.pk, message.pk, SEEN),
            Mark(dave.pk, message.pk, DELIVERED),
            Mark(erin.pk, later.pk, SEEN),
        ]
    )

    response = client_for(alice).get(url(message.pk))

    assert response.status_code == 200
    assert response.json() == {
        "messageId": str(message.pk),
        "sessionId": str(room.pk),
        "seq": 1,
        "seenBy": [{"id": bob.pk, "username": "bob"}, {"id": erin.pk, "username": "erin"}],
        "deliveredTo": [{"id": dave.pk, "username": "dave"}],
    }


def test_the_caller_and_the_author_are_not_listed(client_for, room, alice, bob):
    message = message_send(author=alice, session_id=room.pk, content="hello")
    receipts_mark_batch([Mark(alice.pk, message.pk, SEEN), Mark(bob.pk, message.pk, SEEN)])

    as_bob = client_for(bob).get(url(message.pk) + "/").json()

    assert (as_bob["seenBy"], as_bob["deliveredTo"]) == ([], [])


def test_a_non_member_is_refused_and_an_unknown_message_is_not_found(
    client_for, room, alice, carol
):
    message = message_send(author=alice, session_id=room.pk, content="secret")

    assert client_for(carol).get(url(message.pk)).status_code == 403
    assert client_for(alice).get(url(uuid.uuid4())).status_code == 404
    assert client_for().get(url(message.pk)).status_code == 401


def test_the_endpoint_is_in_the_openapi_schema(client_for, alice):
    schema = client_for(alice).get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/chat/messages/{message_id}/receipts/"]["get"]
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/MessageReceipts"}
    fields = schema["components"]["schemas"]["MessageReceipts"]["properties"]
    assert set(fields) == {"messageId", "sessionId", "seq", "seenBy", "deliveredTo"}
