"""Banning a user: the account is shut, every refresh token is revoked, and the user's open
connections are told to close once the ban commits, whichever way the user was deactivated:
the service, the admin's list action or change form, ``manage.py deactivate_user``, or a plain
``user.save()`` as a shell or another app makes."""

import asyncio
import io
import logging

import pytest
from channels.layers import get_channel_layer
from django.core.management import CommandError, call_command
from django.db import transaction
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.services import USER_DEACTIVATED, user_deactivate, user_reactivate
from chat import broadcaster
from chat.events import group_for_user
from chatproject.errors import DomainError

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "pw-Secret-123"


@pytest.fixture(autouse=True)
def no_auth_rate_limit(settings):
    # These tests log in often; the brute-force limit has its own tests.
    settings.AUTH_RATE = "off"


@pytest.fixture
def moderator(make_user):
    return make_user("mod", is_staff=True, is_superuser=True)


@pytest.fixture
def listen_user():
    """Subscribe a fresh channel to a user's group; returns a function that drains the
    messages sent to it so far.

    One event loop serves the subscription and every drain, as in the ``listen`` fixture: the
    Redis pub/sub layer keeps one layer instance per loop.
    """
    layer = get_channel_layer()
    loop = asyncio.new_event_loop()

    def subscribe(user):
        channel = loop.run_until_complete(layer.new_channel())
        loop.run_until_complete(layer.group_add(group_for_user(user.pk), channel))

        async def _drain():
            received = []
            while True:
                try:
                    received.append(await asyncio.wait_for(layer.receive(channel), timeout=0.3))
                except TimeoutError:
                    return received

        return lambda: loop.run_until_complete(_drain())

    yield subscribe
    loop.run_until_complete(layer.flush())
    loop.close()


def login(username: str) -> dict:
    response = APIClient().post(
        "/api/auth/token", {"username": username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def refresh(token: str):
    return APIClient().post("/api/auth/token/refresh", {"refresh": token}, format="json")


def test_deactivate_shuts_the_account_and_tells_its_connections(alice, listen_user):
    drain = listen_user(alice)

    user_deactivate(user=alice)

    alice.refresh_from_db()
    assert alice.is_active is False
    assert drain() == [{"type": USER_DEACTIVATED}]


def test_deactivate_revokes_every_refresh_token_including_rotated_ones(alice):
    first = login("alice")["refresh"]
    rotated = refresh(login("alice")["refresh"]).json()["refresh"]

    user_deactivate(user=alice)

    for token in (first, rotated):
        response = refresh(token)
        assert response.status_code == 401
        assert response.json()["code"] == "UNAUTHORIZED"
    unrevoked = OutstandingToken.objects.filter(user=alice, blacklistedtoken__isnull=True)
    assert not unrevoked.exists()


def test_a_banned_user_cannot_log_in_or_use_an_access_token(alice):
    access = login("alice")["access"]

    user_deactivate(user=alice)

    refused = APIClient().post(
        "/api/auth/token", {"username": "alice", "password": PASSWORD}, format="json"
    )
    assert refused.status_code == 401
    assert refused.json()["code"] == "UNAUTHORIZED"
    me = APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {access}")
    assert me.status_code == 401


def test_other_users_tokens_are_left_alone(alice, bob):
    bobs = login("bob")["refresh"]
    login("alice")

    user_deactivate(user=alice)

    assert refresh(bobs).status_code == 200


def test_a_rolled_back_ban_changes_nothing_and_notifies_no_one(alice, listen_user):
    token = login("alice")["refresh"]
    drain = listen_user(alice)

    with pytest.raises(RuntimeError), transaction.atomic():
        user_deactivate(user=alice)
        raise RuntimeError("the surrounding write failed")

    alice.refresh_from_db()
    assert alice.is_active is True
    assert not BlacklistedToken.objects.exists()
    assert drain() == []
    assert refresh(token).status_code == 200


def test_a_channel_layer_failure_after_commit_is_logged_not_raised(alice, monkeypatch, caplog):
    class BrokenLayer:
        async def group_send(self, group, message):
            raise ConnectionError("redis is down")

    monkeypatch.setattr(broadcaster, "get_channel_layer", BrokenLayer)

    with caplog.at_level(logging.WARNING, logger="chat.broadcaster"):
        user_deactivate(user=alice)

    alice.refresh_from_db()
    assert alice.is_active is False
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_a_moderator_cannot_ban_themselves(moderator):
    with pytest.raises(DomainError) as caught:
        user_deactivate(user=moderator, by=moderator)

    assert caught.value.code == "FORBIDDEN"
    moderator.refresh_from_db()
    assert moderator.is_active is True


def test_reactivate_lets_the_user_log_in_again_but_old_tokens_stay_revoked(alice):
    old = login("alice")["refresh"]
    user_deactivate(user=alice)

    user_reactivate(user=alice)

    alice.refresh_from_db()
    assert alice.is_active is True
    assert refresh(login("alice")["refresh"]).status_code == 200
    assert refresh(old).status_code == 401


# --- the admin actions ----------------------------------------------------------------------


def _run_action(client, action: str, *users):
    return client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": action, "_selected_action": [str(u.pk) for u in users]},
        follow=True,
    )


def test_the_ban_action_deactivates_through_the_service(client, moderator, alice, listen_user):
    token = login("alice")["refresh"]
    drain = listen_user(alice)
    client.force_login(moderator)

    response = _run_action(client, "deactivate", alice)

    assert b"Deactivated 1 user(s)." in response.content
    alice.refresh_from_db()
    assert alice.is_active is False
    assert refresh(token).status_code == 401
    assert drain() == [{"type": USER_DEACTIVATED}]


def test_the_ban_action_reports_a_moderator_selecting_themselves(client, moderator, alice):
    client.force_login(moderator)

    response = _run_action(client, "deactivate", moderator, alice)

    assert b"Deactivated 1 user(s)." in response.content
    assert b"deactivate your own account" in response.content
    moderator.refresh_from_db()
    assert moderator.is_active is True


def test_the_reactivate_action_lifts_the_ban(client, moderator, alice):
    user_deactivate(user=alice)
    client.force_login(moderator)

    response = _run_action(client, "reactivate", alice)

    assert b"Reactivated 1 user(s)." in response.content
    alice.refresh_from_db()
    assert alice.is_active is True


def _change_form_data(user, **changes) -> dict:
    """What the admin's change form posts for ``user``: an unticked box is left out."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
        "is_active": "on",
        "_save": "Save",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_unticking_active_on_the_change_form_bans_the_user(client, moderator, alice, listen_user):
    token = login("alice")["refresh"]
    drain = listen_user(alice)
    client.force_login(moderator)

    response = client.post(
        reverse("admin:accounts_user_change", args=[alice.pk]),
        _change_form_data(alice, is_active=None),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    alice.refresh_from_db()
    assert alice.is_active is False
    assert refresh(token).status_code == 401
    assert drain() == [{"type": USER_DEACTIVATED}]


def test_saving_an_active_user_on_the_change_form_notifies_no_one(
    client, moderator, alice, listen_user
):
    token = login("alice")["refresh"]
    drain = listen_user(alice)
    client.force_login(moderator)

    response = client.post(
        reverse("admin:accounts_user_change", args=[alice.pk]),
        _change_form_data(alice, email="alice@example.com"),
    )

    assert response.status_code == 302
    assert drain() == []
    assert refresh(token).status_code == 200


def test_the_change_form_does_not_offer_last_seen_at(client, moderator, alice):
    client.force_login(moderator)

    page = client.get(reverse("admin:accounts_user_change", args=[alice.pk]))

    assert page.status_code == 200
    assert "is_active" in page.context["adminform"].form.fields
    assert "last_seen_at" not in page.context["adminform"].form.fields


def test_a_moderator_cannot_untick_their_own_active_box(client, moderator, listen_user):
    drain = listen_user(moderator)
    client.force_login(moderator)

    page = client.get(reverse("admin:accounts_user_change", args=[moderator.pk]))
    response = client.post(
        reverse("admin:accounts_user_change", args=[moderator.pk]),
        _change_form_data(moderator, is_active=None, is_staff="on", is_superuser="on"),
    )

    assert "is_active" not in page.context["adminform"].form.fields
    assert response.status_code == 302
    moderator.refresh_from_db()
    assert moderator.is_active is True
    assert drain() == []


# --- any other way --------------------------------------------------------------------------


def test_a_plain_save_as_a_shell_does_it_bans_the_user(alice, listen_user):
    access = login("alice")
    drain = listen_user(alice)

    alice.is_active = False
    alice.save()

    assert drain() == [{"type": USER_DEACTIVATED}]
    assert refresh(access["refresh"]).status_code == 401
    me = APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {access['access']}")
    assert me.status_code == 401


def test_a_save_that_leaves_is_active_out_ends_nothing_again(alice, listen_user):
    user_deactivate(user=alice)
    drain = listen_user(alice)

    alice.email = "alice@example.com"
    alice.save(update_fields=["email"])

    assert drain() == []


def test_reactivating_notifies_no_one(alice, listen_user):
    user_deactivate(user=alice)
    drain = listen_user(alice)

    user_reactivate(user=alice)

    assert drain() == []


def test_the_deactivate_user_command_bans_each_user_named(alice, bob, listen_user):
    token = login("alice")["refresh"]
    drain_alice, drain_bob = listen_user(alice), listen_user(bob)

    call_command("deactivate_user", "alice", "bob", stdout=io.StringIO())

    alice.refresh_from_db()
    bob.refresh_from_db()
    assert (alice.is_active, bob.is_active) == (False, False)
    assert refresh(token).status_code == 401
    assert drain_alice() == [{"type": USER_DEACTIVATED}]
    assert drain_bob() == [{"type": USER_DEACTIVATED}]


def test_the_command_names_an_unknown_user_and_bans_nobody(alice):
    with pytest.raises(CommandError, match="nobody-here"):
        call_command("deactivate_user", "alice", "nobody-here")

    alice.refresh_from_db()
    assert alice.is_active is True


def test_the_user_list_shows_who_is_active_and_when_they_were_last_seen(client, moderator):
    client.force_login(moderator)

    listing = client.get(reverse("admin:accounts_user_changelist"), {"is_active__exact": "1"})

    assert listing.status_code == 200
    assert {"is_active", "last_seen_at"} <= set(listing.context["cl"].list_display)
