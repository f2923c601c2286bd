"""Bot accounts and their API tokens: made by staff, used by integrations.

A bot is a ``User`` with ``is_bot``: no usable password (``accounts.backends`` refuses it on
every login door anyway), signing in with long-lived tokens that django-rest-knox makes and
checks (``BotToken``, ``KNOX_TOKEN_MODEL``): only a hash is stored, so a token is shown
once, when it is made. A token works on REST (``Authorization: Token cbt_...``,
``accounts.bot_auth``) and on the WebSocket handshake (``accounts.auth``).

Revoking a token is deleting it. However the row goes (this module, the admin, the bot's
deletion), ``accounts.signals`` tells the bot's sockets on every worker, after commit, to
close the ones opened with it (``BOT_TOKEN_REVOKED``).
"""

from __future__ import annotations

import logging
import uuid

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.utils.text import slugify

from chat import broadcaster
from chat.events import group_for_user
from chatproject.errors import DomainError, forbidden, not_found, validation_error

from .models import BotToken
from .services import user_insert, username_free_check

logger = logging.getLogger(__name__)

User = get_user_model()

# The channel-layer message sent to a bot's group when one of its tokens is deleted, with
# ``tokenId``: the sockets opened with that token close (``GatewayConsumer``).
BOT_TOKEN_REVOKED = "bot.token_revoked"


def _staff_only(by) -> None:
    if not by.is_staff or by.is_bot:
        raise forbidden("Only staff can manage bots.")


# --- reads ---------------------------------------------------------------------------------


def bots_list(*, by) -> QuerySet:
    """Every bot account, newest first (staff)."""
    _staff_only(by)
    return User.objects.filter(is_bot=True).order_by("-date_joined", "-pk")


def bot_get(*, by, bot_id: int):
    _staff_only(by)
    bot = User.objects.filter(pk=bot_id, is_bot=True).first()
    if bot is None:
        raise not_found("Bot")
    return bot


def bot_tokens_list(*, by, bot_id: int) -> QuerySet:
    """A bot's tokens, newest first (staff). Their secrets are not kept, only hashes."""
    bot = bot_get(by=by, bot_id=bot_id)
    return BotToken.objects.filter(user=bot).order_by("-created")


# --- writes --------------------------------------------------------------------------------


def bot_user_create(*, username: str):
    """A bot account named ``username`` (taken or reserved: VALIDATION_ERROR), with no
    usable password."""
    username_free_check(username)
    bot = User(username=username, is_bot=True)
    bot.set_unusable_password()
    return user_insert(bot)


def bot_user_for_name(name: str):
    """A bot account for a display name (a webhook's): its slug, made unique by a number
    when taken or reserved."""
    base = (slugify(name) or "bot")[:40]
    for attempt in range(1, 1000):
        username = base if attempt == 1 else f"{base}-{attempt}"
        try:
            return bot_user_create(username=username)
        except DomainError:  # reserved, taken, or taken meanwhile: try the next
            logger.debug("bot username %s is not free", username)
    raise validation_error("No free username for this bot: choose another name.")


def bot_create(*, by, username: str):
    """A new bot account (staff). It gets tokens with ``bot_token_create``."""
    _staff_only(by)
    bot = bot_user_create(username=username)
    logger.info("bot %s created by %s", bot.pk, by.pk)
    return bot


def bot_token_create(*, by, bot_id: int, name: str = "") -> tuple[BotToken, str]:
    """A new token for the bot (staff): the row and the token itself, which is not stored
    and can't be shown again."""
    bot = bot_get(by=by, bot_id=bot_id)
    if not bot.is_active:
        raise validation_error("The bot is deactivated: reactivate it first.")
    token, raw = BotToken.objects.create(bot, expiry=None, name=name, created_by=by)
    logger.info("token %s of bot %s created by %s", token.token_id, bot.pk, by.pk)
    return token, raw


def bot_token_revoke(*, by, bot_id: int, token_id) -> None:
    """Delete one of the bot's tokens (staff): requests with it fail from now on, and the
    sockets opened with it close (``accounts.signals``)."""
    bot = bot_get(by=by, bot_id=bot_id)
    try:
        token_id = uuid.UUID(str(token_id))
    except ValueError as exc:
        raise not_found("Token") from exc
    token = BotToken.objects.filter(user=bot, token_id=token_id).first()
    if token is None:
        raise not_found("Token")
    token.delete()
    logger.info("token %s of bot %s revoked by %s", token_id, bot.pk, by.pk)


def bot_token_revoked_tell(*, bot_id: int, token_id) -> None:
    """Once the deletion commits, tell every socket of the bot, on every worker, that this
    token is revoked; the ones it opened close."""
    message = {"type": BOT_TOKEN_REVOKED, "tokenId": str(token_id)}
    transaction.on_commit(lambda: broadcaster.publish(group_for_user(bot_id), message))
