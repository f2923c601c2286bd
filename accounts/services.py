"""Writes on users: registration and banning."""

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from chat import broadcaster
from chat.events import group_for_user
from chat.extensions import reserved_usernames
from chatproject.errors import forbidden, validation_error

logger = logging.getLogger(__name__)

User = get_user_model()

RESERVED = "That username is reserved for the assistant."

# The channel-layer message sent to a banned user's group; the WebSocket consumer handles it
# (``user_deactivated``) by closing that user's connections.
USER_DEACTIVATED = "user.deactivated"


def username_reserved(username: str) -> bool:
    """Whether ``username`` is ``assistant`` or an agent's name (any case): an ``@`` of it
    asks the assistant, so no account may have it."""
    return username.lower() in reserved_usernames()


def username_reserved_check(username: str) -> None:
    """VALIDATION_ERROR for a reserved username (``username_reserved``)."""
    if username_reserved(username):
        raise validation_error(RESERVED, {"username": [RESERVED]})


TAKEN = "That username is taken."


def username_free_check(username: str) -> None:
    """VALIDATION_ERROR for a username that is reserved or taken (in any case)."""
    username_reserved_check(username)
    if User.objects.filter(username__iexact=username).exists():
        raise validation_error(TAKEN, {"username": [TAKEN]})


def user_insert(user: User) -> User:
    """Save a new account whose name ``username_free_check`` passed: a VALIDATION_ERROR,
    not an IntegrityError, if another took the name meanwhile."""
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:
        raise validation_error(TAKEN, {"username": [TAKEN]}) from exc
    return user


def user_register(*, username: str, password: str, email: str = "") -> User:
    """Create an account, checking the password with Django's validators."""
    username_free_check(username)
    candidate = User(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise validation_error("Choose a stronger password.", {"password": exc.messages}) from exc
    candidate.set_password(password)
    return user_insert(candidate)


def user_deactivate(*, user, by=None) -> User:
    """Ban ``user``: refuse new logins, end every refresh token and close open connections.

    ``by`` is the moderator, when one acts (the admin passes ``request.user``); a moderator
    can't ban themselves, which would lock them out of the admin that undoes it. The save is
    what ends the user's access (``accounts.signals``), as it does for any other save of
    ``is_active=False``. Access tokens already issued stop working at once too: JWT
    authentication refuses inactive users.
    """
    if by is not None and by.pk == user.pk:
        raise forbidden("You can't deactivate your own account.")
    user.is_active = False
    user.save(update_fields=["is_active"])
    logger.info("user %s deactivated by %s", user.pk, by.pk if by is not None else "system")
    return user


def user_reactivate(*, user) -> User:
    """Lift a ban: the user may log in again. Their old refresh tokens stay revoked."""
    user.is_active = True
    user.save(update_fields=["is_active"])
    logger.info("user %s reactivated", user.pk)
    return user


def user_access_end(*, user_id: int) -> None:
    """End what an inactive user still holds: every refresh token is blacklisted, and once
    that commits every connection of theirs, on every worker, is told to close.

    Called for each save of an inactive user (``accounts.signals``), however it was made
    (the admin's list action or change form, ``deactivate_user``, ``user.save()`` in a shell
    or another app); doing it again for a user already shut out changes nothing.
    """
    with transaction.atomic():
        unrevoked = OutstandingToken.objects.filter(user_id=user_id, blacklistedtoken__isnull=True)
        BlacklistedToken.objects.bulk_create(
            [BlacklistedToken(token_id=pk) for pk in unrevoked.values_list("pk", flat=True)],
            # A refresh racing this ban may blacklist the same token first; either way it ends.
            ignore_conflicts=True,
        )
        transaction.on_commit(lambda: _disconnect(user_id))
    logger.info("user %s is inactive: refresh tokens revoked, connections told to close", user_id)


def _disconnect(user_id: int) -> None:
    """Tell every consumer of ``user_id`` to close. Runs after commit, so it never raises: the
    ban is stored, and a socket that misses this still dies when its access token expires."""
    broadcaster.publish(group_for_user(user_id), {"type": USER_DEACTIVATED})
