"""Toggling emoji reactions."""

from __future__ import annotations

from django.db import transaction

from chatproject.errors import validation_error

from .. import event_types
from ..events import event_record
from ..models import Message, Reaction
from ..selectors import message_get_for_member
from ..serializers import reaction_summary


def reaction_toggle(*, user, message_id, emoji: str) -> dict:
    """Add the user's ``emoji`` to the message, or take it away if it is there.

    Returns ``{action, reactions}`` and broadcasts ``message:reaction:update``.
    """
    message = message_get_for_member(user=user, message_id=message_id)
    if message.is_deleted:
        raise validation_error("A deleted message can't take reactions.")
    with transaction.atomic():
        # Lock the message so two toggles of one emoji can't both add it.
        Message.objects.select_for_update().filter(pk=message.pk).first()
        removed, _ = Reaction.objects.filter(message=message, user=user, emoji=emoji).delete()
        action = "removed" if removed else "added"
        if not removed:
            Reaction.objects.create(message=message, user=user, emoji=emoji)
        reactions = reaction_summary(
            Reaction.objects.filter(message=message).order_by("created_at", "id")
        )
        event_record(
            session_id=message.session_id,
            event=event_types.MESSAGE_REACTION_UPDATE,
            data=event_types.message_reaction_update(
                session_id=message.session_id,
                message_id=message.pk,
                user_id=user.pk,
                emoji=emoji,
                action=action,
                reactions=reactions,
            ),
            message_id=message.pk,
        )
    return {"action": action, "reactions": reactions}
