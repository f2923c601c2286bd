"""REST writes with a WebSocket twin spend the twin's per-user budget (CONTRACT section 3):
``POST /api/chat/messages`` counts as ``message:send``, so neither door is a way around the
other's limit, and a refusal over REST is a 429 with ``Retry-After`` and the same body."""

import pytest
from channels.db import database_sync_to_async

from chat.services.messages import message_send
from chat.services.sessions import session_create
from chat.throttles import rule_for

from .conftest import request

pytestmark = [pytest.mark.django_db(transaction=True)]


def send_over_rest(client, room, content: str):
    return client.post(
        "/api/chat/messages", {"sessionId": str(room.pk), "content": content}, format="json"
    )


def assert_rate_limited(response, event: str) -> None:
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "RATE_LIMITED" and event in body["message"]
    assert body["retryAfter"] >= 1
    assert response["Retry-After"] == str(body["retryAfter"])


async def test_rest_and_websocket_sends_spend_one_budget(ws_connect, client_for, alice, bob):
    room = await database_sync_to_async(
        lambda: session_create(creator=alice, title="general", member_ids=[bob.pk])
    )()
    limit = rule_for("message:send").limit
    http = client_for(alice)
    ws = await ws_connect(alice)
    half = limit // 2
    for i in range(half):
        data = {"sessionId": str(room.pk), "content": f"ws {i}"}
        assert (await request(ws, "message:send", data, ref=i))["event"] == "ack"
    for i in range(half, limit):
        response = await database_sync_to_async(send_over_rest)(http, room, f"rest {i}")
        assert response.status_code == 201, response.content

    refused = await database_sync_to_async(send_over_rest)(http, room, "one too many")
    over_ws = await request(
        ws, "message:send", {"sessionId": str(room.pk), "content": "and here"}, ref="over"
    )

    assert_rate_limited(refused, "message:send")
    assert over_ws["event"] == "error" and over_ws["data"]["code"] == "RATE_LIMITED"


@pytest.mark.parametrize(
    ("method", "path", "body", "event"),
    [
        ("put", "/api/chat/messages/{id}", {"content": "changed"}, "message:edit"),
        ("delete", "/api/chat/messages/{id}", None, "message:delete"),
        ("post", "/api/chat/messages/{id}/reactions", {"emoji": "👍"}, "message:reaction"),
    ],
)
def test_each_rest_write_with_a_websocket_twin_is_limited_like_it(
    client_for, room, alice, settings, method, path, body, event
):
    settings.WS_THROTTLE_LIMIT = 3  # the rule of events with none of their own
    message = message_send(author=alice, session_id=room.pk, content="hello")
    http = client_for(alice)
    call = getattr(http, method)
    url = path.format(id=message.pk)

    statuses = [call(url, body, format="json").status_code for _ in range(rule_for(event).limit)]
    refused = call(url, body, format="json")

    assert all(status < 400 for status in statuses), statuses
    assert_rate_limited(refused, event)


def test_reads_are_not_counted(client_for, room, alice, settings):
    settings.WS_THROTTLE_LIMIT = 1
    message = message_send(author=alice, session_id=room.pk, content="hello")
    http = client_for(alice)

    statuses = [http.get(f"/api/chat/messages/{message.pk}").status_code for _ in range(5)]

    assert statuses == [200] * 5
