"""Pinning and unpinning messages: any member of the session may do either, a message has at
most one pin, and each change is a durable event (``message:pinned`` / ``message:unpinned``)
replayed by seq like the message events. Pinning a pinned message, or unpinning one that is
not pinned, changes nothing and records nothing."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts.serializers import render_user
from chatproject.errors import validation_error

from .. import event_types
from ..events import event_record
from ..message_details import loaded_pin
from ..models import Message, Pin
from ..selectors import message_get, message_get_for_member
from ..serializers import render_message


@dataclass(frozen=True)
class PinChange:
    """The message as it stands after the request (loaded with its pin, if any), and whether
    the request changed it."""

    message: Message
    changed: bool


DELETED_REFUSAL = "A deleted message can't be pinned."


def message_pin(*, user, message_id) -> PinChange:
    """Pin a message of a session ``user`` is a member of, and broadcast ``message:pinned``
    with the message as it renders pinned."""
    message = message_get_for_member(user=user, message_id=message_id)
    if message.is_deleted:
        raise validation_error(DELETED_REFUSAL)
    if loaded_pin(message) is not None:
        return PinChange(message, changed=False)
    with transaction.atomic():
        # The message's row lock orders a pin against a delete and against another pin.
        locked = Message.objects.select_for_update().only("is_deleted").get(pk=message.pk)
        if locked.is_deleted:
            raise validation_error(DELETED_REFUSAL)
        if Pin.objects.filter(message_id=message.pk).exists():
            return PinChange(message_get(message.pk), changed=False)
        Pin.objects.create(message_id=message.pk, session_id=message.session_id, pinned_by=user)
        pinned = message_get(message.pk)
        rendered = render_message(pinned)
        event_record(
            session_id=pinned.session_id,
            event=event_types.MESSAGE_PINNED,
            data=event_types.message_pinned(
                session_id=pinned.session_id,
                message_id=pinned.pk,
                pinned_by=rendered["pinnedBy"],
                pinned_at=rendered["pinnedAt"],
                message=rendered,
            ),
            message_id=pinned.pk,
        )
    return PinChange(pinned, changed=True)


def message_unpin(*, user, message_id) -> PinChange:
    """Take a message's pin away (any member), and broadcast ``message:unpinned``."""
    message = message_get_for_member(user=user, message_id=message_id)
    if loaded_pin(message) is None:
        return PinChange(message, changed=False)
    with transaction.atomic():
        Message.objects.select_for_update().only("pk").get(pk=message.pk)
        removed, _ = Pin.objects.filter(message_id=message.pk).delete()
        message = message_get(message.pk)
        if removed:
            event_record(
                session_id=message.session_id,
                event=event_types.MESSAGE_UNPINNED,
                data=event_types.message_unpinned(
                    session_id=message.session_id,
                    message_id=message.pk,
                    unpinned_by=render_user(user),
                ),
                message_id=message.pk,
            )
    return PinChange(message, changed=bool(removed))
