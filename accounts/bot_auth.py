"""``BotTokenAuthentication``: DRF authentication by a bot's API token (``Authorization:
Token cbt_...``), knox's ``TokenAuthentication`` for bot accounts, recording each token's
last use. The WebSocket handshake checks a token with it too (``accounts.auth``).

A module of its own, importing nothing of ``chat``: DRF imports the authentication classes
while its settings load, before the rest of the project can be imported.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from knox.auth import TokenAuthentication
from rest_framework import exceptions

from .models import BotToken

# A token's ``last_used_at`` is written at most this often: not one write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class BotTokenAuthentication(TokenAuthentication):
    """knox's ``TokenAuthentication`` (``Authorization: Token cbt_...``), for bot accounts
    only, recording when each token was last used."""

    def authenticate_credentials(self, token):
        user, auth_token = super().authenticate_credentials(token)
        if not user.is_bot:
            raise exceptions.AuthenticationFailed("API tokens are for bot accounts only.")
        token_used(auth_token)
        return user, auth_token


def token_used(auth_token: BotToken) -> None:
    now = timezone.now()
    last = auth_token.last_used_at
    if last is None or now - last >= LAST_USED_RESOLUTION:
        BotToken.objects.filter(pk=auth_token.pk).update(last_used_at=now)
        auth_token.last_used_at = now
