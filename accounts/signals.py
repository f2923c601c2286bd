"""A user saved inactive loses their access at once, whoever saved them; so does a bot token
deleted, whoever deleted it.

Deactivation has many doors: the admin's list action and change form, the
``deactivate_user`` command, ``user.save()`` from a shell or another app. Each of them is a
save of the user, so ``post_save`` is the one place that sees them all and calls
``user_access_end``. ``QuerySet.update()`` sends no signal: our code deactivates through
``user_deactivate`` (a save), and so should anything else.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .bots import bot_token_revoked_tell
from .models import BotToken
from .services import user_access_end


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.inactive_user")
def end_an_inactive_users_access(sender, instance, created, update_fields=None, **kwargs):
    """Called after a user is saved: if they are inactive, end their tokens and sockets. A
    save that names its fields and leaves ``is_active`` out changed nothing about it."""
    if created or instance.is_active:
        return
    if update_fields is not None and "is_active" not in update_fields:
        return
    user_access_end(user_id=instance.pk)


@receiver(post_delete, sender=BotToken, dispatch_uid="accounts.bot_token_deleted")
def close_a_revoked_tokens_sockets(sender, instance, **kwargs):
    """Called after a bot token is deleted, by whatever door (the API, the admin, its bot's
    deletion): the sockets opened with it close, on every worker."""
    bot_token_revoked_tell(bot_id=instance.user_id, token_id=instance.token_id)
