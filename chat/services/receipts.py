"""Delivery and read receipts.

``message:seen`` marks a message and every earlier one in its session: the member's read
watermark (``Membership.last_seen_seq``) moves up to it, which is what unread counts read.
Receipts are not durable events: they take no seq and are not replayed.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Greatest
from django.utils import timezone

from .. import event_types
from ..events import broadcast_on_commit, group_for_session
from ..models import Membership, MessageReceipt
from ..selectors import message_get_for_member
from ..serializers import iso


def message_mark_delivered(*, user, message_id) -> dict:
    message = message_get_for_member(user=user, message_id=message_id)
    now = timezone.now()
    with transaction.atomic():
        receipt, created = MessageReceipt.objects.get_or_create(
            message=message, user=user, defaults={"delivered_at": now}
        )
        if not created and receipt.delivered_at is None:
            receipt.delivered_at = now
            receipt.save(update_fields=["delivered_at"])
        data = event_types.message_delivered(
            session_id=message.session_id,
            message_id=message.pk,
            user_id=user.pk,
            delivered_at=iso(receipt.delivered_at),
        )
        broadcast_on_commit(
            group_for_session(message.session_id),
            {"event": event_types.MESSAGE_DELIVERED, "data": data},
            queue_for_session=message.session_id,
        )
    return data


def message_mark_seen(*, user, message_id) -> dict:
    message = message_get_for_member(user=user, message_id=message_id)
    now = timezone.now()
    with transaction.atomic():
        receipt, created = MessageReceipt.objects.get_or_create(
            message=message, user=user, defaults={"delivered_at": now, "seen_at": now}
        )
        if not created and receipt.seen_at is None:
            receipt.seen_at = now
            receipt.delivered_at = receipt.delivered_at or now
            receipt.save(update_fields=["seen_at", "delivered_at"])
        Membership.objects.filter(session_id=message.session_id, user_id=user.pk).update(
            last_seen_seq=Greatest("last_seen_seq", Value(message.seq))
        )
        data = event_types.message_seen_update(
            session_id=message.session_id,
            message_id=message.pk,
            user_id=user.pk,
            seen_at=iso(receipt.seen_at),
        )
        broadcast_on_commit(
            group_for_session(message.session_id),
            {"event": event_types.MESSAGE_SEEN_UPDATE, "data": data},
            queue_for_session=message.session_id,
        )
    return data
