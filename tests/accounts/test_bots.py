"""Bot accounts: staff make them and their API tokens (shown once, stored hashed); a token
signs in on REST and on the WebSocket handshake (header only, never the URL, no expiry);
deleting it or deactivating the bot closes its sockets; bots never log in by password, make
sessions or manage members; the admin makes tokens and revokes them."""

from __future__ import annotations

import re

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.auth import authenticate
from accounts.bots import bot_create, bot_token_create, bot_token_revoke
from accounts.models import BotToken
from accounts.services import user_deactivate
from chat.models import Membership
from chatproject.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()
PASSWORD = "pw-Secret-123"


@pytest.fixture(autouse=True)
def no_auth_rate_limit(settings):
    settings.AUTH_RATE = "off"


@pytest.fixture
def staff(make_user):
    return make_user("staffer", is_staff=True, is_superuser=True)


@pytest.fixture
def bot(staff):
    return bot_create(by=staff, username="deploybot")


@pytest.fixture
def bot_token(staff, bot):
    _, raw = bot_token_create(by=staff, bot_id=bot.pk, name="ci")
    return raw


def token_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    return client


# --- staff REST ----------------------------------------------------------------------------


def test_staff_create_a_bot_and_a_token_shown_once_and_stored_hashed(client_for, staff):
    http = client_for(staff)
    created = http.post("/api/auth/bots", {"username": "builds"}, format="json")
    assert created.status_code == 201, created.content
    bot = created.json()
    assert bot["username"] == "builds" and bot["isBot"] is True and bot["isActive"] is True
    assert not User.objects.get(pk=bot["id"]).has_usable_password()

    made = http.post(f"/api/auth/bots/{bot['id']}/tokens/", {"name": "ci"}, format="json")
    assert made.status_code == 201, made.content
    token = made.json()
    assert set(token) == {"id", "name", "token", "createdAt", "lastUsedAt"}
    assert token["token"].startswith("cbt_") and token["name"] == "ci"
    assert token["lastUsedAt"] is None
    stored = BotToken.objects.get(token_id=token["id"])
    assert token["token"] not in (stored.digest, stored.token_key)

    listed = http.get(f"/api/auth/bots/{bot['id']}/tokens").json()
    assert listed == [{k: v for k, v in token.items() if k != "token"}]
    assert [b["username"] for b in http.get("/api/auth/bots").json()] == ["builds"]


def test_only_staff_manage_bots(client_for, alice, bot, bot_token):
    http = client_for(alice)
    assert http.get("/api/auth/bots").status_code == 403
    refused = http.post("/api/auth/bots", {"username": "x"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    assert http.post(f"/api/auth/bots/{bot.pk}/tokens", {}, format="json").status_code == 403
    # A bot can't make bots or tokens either, even for itself.
    as_bot = token_client(bot_token)
    assert as_bot.post(f"/api/auth/bots/{bot.pk}/tokens", {}, format="json").status_code == 403


def test_a_taken_username_and_an_unknown_bot_are_refused(client_for, staff, alice):
    http = client_for(staff)
    taken = http.post("/api/auth/bots", {"username": "ALICE"}, format="json")
    assert taken.status_code == 400 and taken.json()["code"] == "VALIDATION_ERROR"
    # alice is a person, not a bot: no tokens for her.
    assert http.post(f"/api/auth/bots/{alice.pk}/tokens", {}, format="json").status_code == 404


def test_a_token_authenticates_rest_and_records_its_use(bot, bot_token, alice, room):
    Membership.objects.create(session=room, user=bot)
    http = token_client(bot_token)
    me = http.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["username"] == "deploybot"
    assert me.json()["isBot"] is True
    sent = http.post(
        "/api/chat/messages", {"sessionId": str(room.pk), "content": "deployed"}, format="json"
    )
    assert sent.status_code == 201, sent.content
    assert sent.json()["isBot"] is True and sent.json()["author"]["username"] == "deploybot"
    assert BotToken.objects.get(user=bot).last_used_at is not None
    # A person's messages are not a bot's.
    history = APIClient()
    history.force_authenticate(alice)
    page = history.get(f"/api/chat/sessions/{room.pk}/messages").json()
    assert [m["isBot"] for m in page["messages"]] == [True]


def test_a_wrong_or_deleted_token_is_unauthorized(client_for, staff, bot, bot_token):
    assert token_client("cbt_" + "0" * 64).get("/api/auth/me").status_code == 401
    token_id = BotToken.objects.get(user=bot).token_id
    deleted = client_for(staff).delete(f"/api/auth/bots/{bot.pk}/tokens/{token_id}")
    assert deleted.status_code == 204
    refused = token_client(bot_token).get("/api/auth/me")
    assert refused.status_code == 401 and refused.json()["code"] == "UNAUTHORIZED"
    again = client_for(staff).delete(f"/api/auth/bots/{bot.pk}/tokens/{token_id}")
    assert again.status_code == 404


def test_a_deactivated_bots_token_is_unauthorized(staff, bot, bot_token):
    user_deactivate(user=bot, by=staff)
    assert token_client(bot_token).get("/api/auth/me").status_code == 401


# --- what bots can't do --------------------------------------------------------------------


def test_a_bot_never_logs_in_by_password_even_if_given_one(bot):
    bot.set_password(PASSWORD)
    bot.save()
    token = APIClient().post(
        "/api/auth/token", {"username": "deploybot", "password": PASSWORD}, format="json"
    )
    assert token.status_code == 401 and token.json()["code"] == "UNAUTHORIZED"
    web = APIClient().post("/login/", {"username": "deploybot", "password": PASSWORD})
    assert web.status_code == 200  # the form again, with its error: no redirect, no session
    assert "_auth_user_id" not in web.wsgi_request.session
    assert APIClient().login(username="deploybot", password=PASSWORD) is False


def test_people_still_log_in(alice):
    token = APIClient().post(
        "/api/auth/token", {"username": "alice", "password": PASSWORD}, format="json"
    )
    assert token.status_code == 200


def test_a_bot_cannot_create_sessions_or_manage_members(bot, bot_token, room, carol, bob):
    Membership.objects.create(session=room, user=bot, role=Membership.Role.ADMIN)
    http = token_client(bot_token)
    created = http.post("/api/chat/sessions", {"title": "mine"}, format="json")
    assert created.status_code == 403
    assert created.json() == {"code": "FORBIDDEN", "message": "Bots can't create sessions."}
    added = http.post(f"/api/chat/sessions/{room.pk}/members", {"userId": carol.pk}, format="json")
    assert added.status_code == 403 and added.json()["code"] == "FORBIDDEN"
    removed = http.delete(f"/api/chat/sessions/{room.pk}/members/{bob.pk}")
    assert removed.status_code == 403
    renamed = http.patch(f"/api/chat/sessions/{room.pk}", {"title": "x"}, format="json")
    assert renamed.status_code == 403
    assert Membership.objects.filter(session=room).count() == 3


# --- WebSocket -----------------------------------------------------------------------------


async def open_socket(*, headers=(), query: str = ""):
    communicator = WebsocketCommunicator(application, f"/ws/chat/{query}", headers=list(headers))
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator, await communicator.receive_json_from(timeout=5)


def token_header(raw: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Token {raw}".encode())]


async def expect_closed(communicator, code: int, error: str) -> None:
    frame = await communicator.receive_json_from(timeout=5)
    assert frame["event"] == "error" and frame["data"]["code"] == error, frame
    assert (await communicator.receive_output(timeout=5)) == {
        "type": "websocket.close",
        "code": code,
    }


async def test_a_bot_connects_with_its_token_in_the_header_and_never_expires(bot, bot_token):
    ws, first = await open_socket(headers=token_header(bot_token))
    assert first["event"] == "connection:success" and first["data"]["userId"] == bot.pk
    await ws.send_json_to({"event": "ping", "data": {}, "ref": 1})
    assert (await ws.receive_json_from(timeout=5))["event"] == "ack"
    await ws.disconnect()
    credentials = await authenticate({"headers": token_header(bot_token), "query_string": b""})
    assert credentials.user.pk == bot.pk and credentials.token_exp is None
    stored = await database_sync_to_async(BotToken.objects.get)(user=bot)
    assert credentials.bot_token_id == str(stored.token_id)


async def test_a_bot_token_in_the_url_is_unauthorized(bot, bot_token):
    ws, first = await open_socket(query=f"?token={bot_token}")
    assert first["event"] == "error" and first["data"]["code"] == "UNAUTHORIZED"
    assert (await ws.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4401}


async def test_a_wrong_bot_token_is_unauthorized(bot):
    ws, first = await open_socket(headers=token_header("cbt_" + "f" * 64))
    assert first["event"] == "error" and first["data"]["code"] == "UNAUTHORIZED"
    assert (await ws.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4401}


async def test_deleting_a_token_closes_the_sockets_it_opened_and_only_those(staff, bot, bot_token):
    _, other = await database_sync_to_async(bot_token_create)(by=staff, bot_id=bot.pk, name="b")
    revoked, _ = await open_socket(headers=token_header(bot_token))
    revoked_too, _ = await open_socket(headers=token_header(bot_token))
    kept, _ = await open_socket(headers=token_header(other))
    token_id = await database_sync_to_async(
        lambda: BotToken.objects.get(user=bot, name="ci").token_id
    )()
    await database_sync_to_async(bot_token_revoke)(by=staff, bot_id=bot.pk, token_id=token_id)
    for ws in (revoked, revoked_too):
        await expect_closed(ws, 4401, "UNAUTHORIZED")
    await kept.send_json_to({"event": "ping", "data": {}, "ref": 1})
    assert (await kept.receive_json_from(timeout=5))["event"] == "ack"
    await kept.disconnect()


async def test_deleting_a_token_from_the_admin_closes_its_sockets(staff, bot, bot_token):
    ws, _ = await open_socket(headers=token_header(bot_token))
    # The admin's delete (or a bot's deletion) is a delete of the row: the signal sees it.
    await database_sync_to_async(lambda: BotToken.objects.filter(user=bot).delete())()
    await expect_closed(ws, 4401, "UNAUTHORIZED")


async def test_deactivating_a_bot_closes_its_sockets(staff, bot, bot_token):
    ws, _ = await open_socket(headers=token_header(bot_token))
    await database_sync_to_async(user_deactivate)(user=bot, by=staff)
    await expect_closed(ws, 4403, "FORBIDDEN")


# --- admin ---------------------------------------------------------------------------------


def test_the_admin_makes_a_bot_and_token_and_shows_the_token_once(client, staff):
    client.force_login(staff)
    page = client.post(
        reverse("admin:accounts_bottoken_add"),
        {"new_bot_username": "pagerbot", "name": "alerts"},
        follow=True,
    )
    assert page.status_code == 200
    shown = [str(m) for m in page.context["messages"]]
    raw = next(re.search(r"(cbt_[0-9a-f]+)", m).group(1) for m in shown if "cbt_" in m)
    bot = User.objects.get(username="pagerbot")
    assert bot.is_bot and not bot.has_usable_password()
    token = BotToken.objects.get(user=bot)
    assert token.name == "alerts" and token.created_by == staff
    assert token_client(raw).get("/api/auth/me").json()["username"] == "pagerbot"
    change = client.get(reverse("admin:accounts_bottoken_change", args=[token.pk]))
    assert raw not in change.content.decode()
    listing = client.get(reverse("admin:accounts_bottoken_changelist"))
    assert "alerts" in listing.content.decode() and raw not in listing.content.decode()


def test_the_admin_refuses_a_new_bot_named_like_a_user(client, staff, alice):
    client.force_login(staff)
    page = client.post(
        reverse("admin:accounts_bottoken_add"), {"new_bot_username": "ALICE", "name": "x"}
    )
    assert page.status_code == 200 and "That username is taken." in page.content.decode()
    assert not BotToken.objects.exists()


def test_the_admin_revokes_a_token_by_deleting_it(client, staff, bot, bot_token):
    client.force_login(staff)
    token = BotToken.objects.get(user=bot)
    deleted = client.post(
        reverse("admin:accounts_bottoken_delete", args=[token.pk]), {"post": "yes"}
    )
    assert deleted.status_code == 302
    assert token_client(bot_token).get("/api/auth/me").status_code == 401
    bot_page = client.get(reverse("admin:accounts_user_change", args=[bot.pk]))
    assert bot_page.status_code == 200
