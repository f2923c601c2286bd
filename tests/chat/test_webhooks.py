"""Incoming webhooks: owners, admins and staff make them (a bot member, a secret URL shown
once, stored hashed), list and revoke them; a POST to the URL is a message of the hook's bot
through the normal send path (content filter, bounds, ``message:new``), with ``isBot`` and
``metadata.webhook``; unknown or revoked secrets are 404, each hook has its own throttle
(429 + Retry-After), and the admin makes and revokes them too."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from chat.models import IncomingWebhook, Membership, Message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hook(client_for, alice, room):
    created = client_for(alice).post(
        f"/api/chat/sessions/{room.pk}/webhooks", {"name": "CI Builds"}, format="json"
    )
    assert created.status_code == 201, created.content
    return created.json()


def post(url: str, body, **extra):
    # No credentials, and CSRF checked as a browser's cookie session would be: none needed.
    return APIClient(enforce_csrf_checks=True).post(url, body, format="json", **extra)


def test_creating_a_hook_makes_a_bot_member_and_shows_the_url_once(client_for, alice, room, hook):
    assert set(hook) == {
        "id", "sessionId", "name", "bot", "url", "createdAt", "lastUsedAt", "revokedAt",
    }  # fmt: skip
    assert hook["sessionId"] == str(room.pk) and hook["name"] == "CI Builds"
    assert hook["bot"]["username"] == "ci-builds"
    assert re.fullmatch(r"http://testserver/api/chat/hooks/[A-Za-z0-9_-]{43}", hook["url"])
    bot = Membership.objects.get(session=room, user_id=hook["bot"]["id"]).user
    assert bot.is_bot and not bot.has_usable_password()
    secret = hook["url"].rsplit("/", 1)[1]
    stored = IncomingWebhook.objects.get(pk=hook["id"])
    assert stored.secret_digest == hashlib.sha256(secret.encode()).hexdigest()
    listed = client_for(alice).get(f"/api/chat/sessions/{room.pk}/webhooks").json()
    assert listed == [{k: v for k, v in hook.items() if k != "url"}]


def test_a_second_hook_of_the_same_name_gets_its_own_bot(client_for, alice, room, hook):
    again = client_for(alice).post(
        f"/api/chat/sessions/{room.pk}/webhooks", {"name": "CI Builds"}, format="json"
    )
    assert again.json()["bot"]["username"] == "ci-builds-2"


def test_a_hook_named_like_the_assistant_gets_a_numbered_bot(client_for, alice, room):
    made = client_for(alice).post(
        f"/api/chat/sessions/{room.pk}/webhooks", {"name": "Assistant"}, format="json"
    )
    assert made.status_code == 201, made.content
    assert made.json()["bot"]["username"] == "assistant-2"


def test_only_owners_admins_and_staff_manage_hooks(client_for, room, bob, carol, make_user, hook):
    member = client_for(bob)
    refused = member.post(f"/api/chat/sessions/{room.pk}/webhooks", {"name": "x"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    assert member.get(f"/api/chat/sessions/{room.pk}/webhooks").status_code == 403
    assert member.delete(f"/api/chat/webhooks/{hook['id']}").status_code == 403
    outsider = client_for(carol)
    assert outsider.get(f"/api/chat/sessions/{room.pk}/webhooks").status_code == 403
    assert outsider.delete(f"/api/chat/webhooks/{hook['id']}").status_code == 403
    Membership.objects.filter(session=room, user=bob).update(role=Membership.Role.ADMIN)
    made = member.post(f"/api/chat/sessions/{room.pk}/webhooks", {"name": "y"}, format="json")
    assert made.status_code == 201
    staff = client_for(make_user("staffer", is_staff=True))
    assert len(staff.get(f"/api/chat/sessions/{room.pk}/webhooks").json()) == 2


def test_a_post_is_a_bot_message_with_the_hooks_name(client_for, alice, room, hook, listen):
    drain = listen(room)
    posted = post(hook["url"], {"content": "build #12 passed"})
    assert posted.status_code == 201, posted.content
    body = posted.json()
    assert set(body) == {"id", "seq"}
    message = client_for(alice).get(f"/api/chat/messages/{body['id']}").json()
    assert message["seq"] == body["seq"] and message["content"] == "build #12 passed"
    assert message["isBot"] is True and message["author"] == hook["bot"]
    assert message["metadata"] == {"webhook": {"id": hook["id"], "username": "CI Builds"}}
    (new,) = [f for f in drain() if f["event"] == "message:new"]
    assert new["seq"] == body["seq"] and new["data"]["message"]["isBot"] is True
    assert IncomingWebhook.objects.get(pk=hook["id"]).last_used_at is not None


def test_a_post_may_name_itself(client_for, alice, hook):
    posted = post(hook["url"] + "/", {"content": "deploying", "username": "Deployer"})
    assert posted.status_code == 201
    message = Message.objects.get(pk=posted.json()["id"])
    assert message.metadata["webhook"]["username"] == "Deployer"


def test_the_content_filter_and_bounds_hold(settings, hook):
    settings.PROFANITY_FILTER = "reject"
    rejected = post(hook["url"], {"content": "you shit"})
    assert rejected.status_code == 400 and rejected.json()["code"] == "CONTENT_REJECTED"
    settings.PROFANITY_FILTER = "censor"
    censored = post(hook["url"], {"content": "you shit"})
    assert Message.objects.get(pk=censored.json()["id"]).content == "you ****"
    too_long = post(hook["url"], {"content": "x" * (settings.MESSAGE_MAX_LENGTH + 1)})
    assert too_long.status_code == 400 and too_long.json()["code"] == "VALIDATION_ERROR"
    for bad in ({}, {"content": "   "}, {"content": 5}, {"content": "a", "username": "u" * 81}):
        assert post(hook["url"], bad).status_code == 400, bad
    assert (
        APIClient().post(hook["url"], "not json", content_type="application/json").status_code
        == 400
    )


def test_unknown_and_revoked_secrets_are_404(client_for, alice, hook):
    assert post("/api/chat/hooks/" + "A" * 43, {"content": "hi"}).status_code == 404
    revoked = client_for(alice).delete(f"/api/chat/webhooks/{hook['id']}")
    assert revoked.status_code == 204
    gone = post(hook["url"], {"content": "hi"})
    assert gone.status_code == 404 and gone.json()["code"] == "NOT_FOUND"
    listed = client_for(alice).get(f"/api/chat/sessions/{hook['sessionId']}/webhooks").json()
    assert listed[0]["revokedAt"] is not None
    assert client_for(alice).delete(f"/api/chat/webhooks/{hook['id']}").status_code == 204


def test_a_hook_whose_bot_was_deactivated_is_404(hook):
    bot = IncomingWebhook.objects.get(pk=hook["id"]).bot
    bot.is_active = False
    bot.save()
    assert post(hook["url"], {"content": "hi"}).status_code == 404


def test_each_hook_has_its_own_throttle(settings, client_for, alice, room, hook):
    settings.WEBHOOK_POST_LIMIT = 2
    other = (
        client_for(alice)
        .post(f"/api/chat/sessions/{room.pk}/webhooks", {"name": "other"}, format="json")
        .json()
    )
    assert [post(hook["url"], {"content": "m"}).status_code for _ in range(2)] == [201, 201]
    limited = post(hook["url"], {"content": "m"})
    assert limited.status_code == 429 and limited.json()["code"] == "RATE_LIMITED"
    assert int(limited["Retry-After"]) >= 1
    assert post(other["url"], {"content": "m"}).status_code == 201


def test_the_admin_makes_a_hook_shows_its_url_once_and_revokes_it(client, make_user, room):
    staff = make_user("staffer", is_staff=True, is_superuser=True)
    client.force_login(staff)
    page = client.post(
        reverse("admin:chat_incomingwebhook_add"),
        {"session": str(room.pk), "name": "alerts"},
        follow=True,
    )
    shown = " ".join(str(m) for m in page.context["messages"])
    url = re.search(r"(http://testserver/api/chat/hooks/[A-Za-z0-9_-]+)", shown).group(1)
    hook = IncomingWebhook.objects.get(name="alerts")
    assert Membership.objects.filter(session=room, user=hook.bot).exists()
    assert post(url, {"content": "from the admin"}).status_code == 201
    change = client.get(reverse("admin:chat_incomingwebhook_change", args=[hook.pk]))
    assert url.rsplit("/", 1)[1] not in change.content.decode()
    client.post(
        reverse("admin:chat_incomingwebhook_changelist"),
        {"action": "revoke", "_selected_action": [str(hook.pk)]},
    )
    assert post(url, {"content": "again"}).status_code == 404
