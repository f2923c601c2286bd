"""The platform's user: Django's user, kept custom from day one so it can grow; and the
long-lived API tokens of bot accounts."""

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from knox.models import AbstractAuthToken


class User(AbstractUser):
    last_seen_at = models.DateTimeField(null=True, blank=True)
    is_bot = models.BooleanField(
        default=False,
        db_default=False,
        help_text="An integration's account: it signs in with API tokens only, never a password.",
    )

    class Meta:
        db_table = "accounts_user"

    def __str__(self) -> str:
        return self.username


class BotToken(AbstractAuthToken):
    """A bot's long-lived API token, kept as django-rest-knox keeps its tokens: only a hash
    of it is stored (``digest``), so it is shown once, when it is made. ``KNOX_TOKEN_MODEL``
    names this model, so knox's ``TokenAuthentication`` reads it. ``token_id`` is the id the
    API and admin show: the digest, the primary key, is never shown."""

    token_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "bot token"
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name or 'token'} of {self.user_id}"
