"""Incoming webhooks: a secret URL that posts into one session as the hook's own bot.

Owners and admins of a session (and staff) create, list and revoke its hooks. Creating one
makes a bot account for it (``accounts.bots``) and adds it to the session as a member; the
secret is 256 random bits, shown once in the hook's URL, and only its SHA-256 digest is
stored (``IncomingWebhook``). A post is an ordinary message of that bot, sent through
``message_store_one`` as every message is (content filter, seq, ``message:new``), carrying
``metadata.webhook = {id, username}`` for display. Each hook has its own budget of posts
(``WEBHOOK_POST_LIMIT`` a minute, across workers). An unknown or revoked secret, or a hook
whose bot was deactivated, is NOT_FOUND: a guess learns nothing.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.bots import bot_user_for_name
from chatproject.errors import DomainError, forbidden, not_found

from ..models import ChatSession, IncomingWebhook, Membership, Message
from ..permissions import bots_refused, can_manage
from ..selectors import membership_get, session_get, session_get_for_member
from ..state import get_state
from .messages import message_prepare, message_store_one

WEBHOOK_WINDOW_MS = 60_000


def secret_digest(secret: str) -> str:
    """What is stored of a secret: enough to find its hook, not to rebuild its URL."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _session_to_manage(*, user, session_id) -> ChatSession:
    """The session, if ``user`` may manage its hooks: its owner or admins, or staff."""
    bots_refused(user=user, action="manage webhooks")
    if user.is_staff:
        return session_get(session_id=session_id)
    session = session_get_for_member(user=user, session_id=session_id)
    if not can_manage(user=user, membership=membership_get(user=user, session_id=session.pk)):
        raise forbidden("Only the session's owner or admins can manage its webhooks.")
    return session


def webhooks_for_session(*, user, session_id) -> QuerySet[IncomingWebhook]:
    """The session's hooks, revoked ones too, newest first (owners, admins, staff)."""
    session = _session_to_manage(user=user, session_id=session_id)
    return IncomingWebhook.objects.filter(session=session).select_related("bot")


def webhook_create(*, user, session_id, name: str) -> tuple[IncomingWebhook, str]:
    """A new hook of the session, its bot a new member: the hook and its secret, which is
    not stored and can't be shown again."""
    session = _session_to_manage(user=user, session_id=session_id)
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        bot = bot_user_for_name(name)
        Membership.objects.create(session=session, user=bot)
        hook = IncomingWebhook.objects.create(
            session=session,
            bot=bot,
            name=name,
            secret_digest=secret_digest(secret),
            created_by=user,
        )
    return hook, secret


def webhook_revoke(*, user, webhook_id) -> None:
    """Revoke a hook: its URL answers 404 from now on. Its bot stays a member, so its
    messages keep their author; revoking again changes nothing."""
    try:
        webhook_id = uuid.UUID(str(webhook_id))
    except ValueError as exc:
        raise not_found("Webhook") from exc
    hook = IncomingWebhook.objects.filter(pk=webhook_id).first()
    if hook is None:
        raise not_found("Webhook")
    if not user.is_staff:
        # A member who may not manage it is told no; anyone else learns nothing of it.
        _session_to_manage(user=user, session_id=hook.session_id)
    if hook.revoked_at is None:
        hook.revoked_at = timezone.now()
        hook.save(update_fields=["revoked_at"])


def webhook_for_secret(*, secret: str) -> IncomingWebhook:
    """The live hook this secret opens, with its bot; NOT_FOUND otherwise."""
    hook = (
        IncomingWebhook.objects.filter(
            secret_digest=secret_digest(secret), revoked_at__isnull=True, bot__is_active=True
        )
        .select_related("bot")
        .first()
    )
    if hook is None:
        raise not_found("Webhook")
    return hook


async def webhook_throttle_check(*, hook: IncomingWebhook) -> None:
    """Count one post of the hook, on any worker; RATE_LIMITED (429, Retry-After) past
    ``WEBHOOK_POST_LIMIT`` a minute."""
    limit = settings.WEBHOOK_POST_LIMIT
    retry_after = await get_state().throttle_hit(f"webhook:{hook.pk}", limit, WEBHOOK_WINDOW_MS)
    if retry_after is not None:
        raise DomainError(
            "RATE_LIMITED",
            f"Too many posts to this webhook: at most {limit} per minute.",
            retry_after=retry_after,
        )


def webhook_post(*, hook: IncomingWebhook, content: str, username: str = "") -> Message:
    """Post ``content`` into the hook's session as its bot, shown under ``username`` (the
    hook's name when not given)."""
    message = message_prepare(author=hook.bot, session_id=hook.session_id, content=content)
    message.metadata = {"webhook": {"id": str(hook.pk), "username": username or hook.name}}
    message = message_store_one(message, author=hook.bot)
    IncomingWebhook.objects.filter(pk=hook.pk).update(last_used_at=timezone.now())
    return message
