"""The platform's user: Django's user, kept custom from day one so it can grow."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "accounts_user"

    def __str__(self) -> str:
        return self.username
