"""Mentions and notifications: who a message names (``Mention`` rows, stored with it), the
member's ``notify`` setting, and the ``notification:new`` that members who should hear of a
new message get once it commits.

A send reads nothing more for this unless its text has an ``@``: then one SELECT finds the
members it names (with their ``notify``), for a whole batch of sends at once, and one INSERT
stores every mention of the batch. Who hears of every message (``notify = all``) and the
session's title come back from the statement that takes the seqs (``seq_take(notify=)``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.db import transaction
from django.db.models.functions import Lower

from chatproject.errors import validation_error

from .. import broadcaster, event_types
from ..events import FRAME_MESSAGE_TYPE, Allocated, encode, group_for_user
from ..mentions import mention_names, mentions_find
from ..models import Membership, Mention, Message
from ..selectors import session_get_for_member

NOTIFY_CHOICES = tuple(Membership.Notify.values)


class Named(NamedTuple):
    """A member a text may name: who, and how they want to hear of messages."""

    user_id: int
    username: str
    notify: str


def _parsed(message: Message) -> bool:
    """The assistant's own messages are not read for mentions."""
    return message.role != Message.Role.ASSISTANT


def _members_named(names_by_session: dict[uuid.UUID, set[str]]) -> dict[tuple, Named]:
    """Per (session id, lowercased username): the members of those sessions with those
    names. One query for any number of sessions."""
    every_name = set().union(*names_by_session.values())
    rows = (
        Membership.objects.filter(session_id__in=list(names_by_session))
        .annotate(name=Lower("user__username"))
        .filter(name__in=every_name)
        .values_list("session_id", "name", "user_id", "user__username", "notify")
    )
    return {(session_id, name): Named(*rest) for session_id, name, *rest in rows}


def mentions_prepare(messages: Sequence[Message]) -> None:
    """Find who each new message names, before it is stored: it gets ``mention_list`` (as
    the message object renders it), ``mentioned`` (user id -> their ``notify``) and
    ``found_mentions``, which ``mentions_insert`` stores once its seq is known."""
    names_by_session: dict[uuid.UUID, set[str]] = {}
    for message in messages:
        message.mention_list, message.mentioned, message.found_mentions = [], {}, []
        if _parsed(message) and (names := mention_names(message.content)):
            names_by_session.setdefault(message.session_id, set()).update(names)
    if not names_by_session:
        return
    named = _members_named(names_by_session)
    for message in messages:
        if message.session_id not in names_by_session or not _parsed(message):
            continue
        session_id = message.session_id
        found = mentions_find(message.content, lambda name, at=session_id: named.get((at, name)))
        message.found_mentions = found
        message.mention_list = [_rendered(f.member, f.offset, f.length) for f in found]
        message.mentioned = {f.member.user_id: f.member.notify for f in found}


def _rendered(member: Named, offset: int, length: int) -> dict[str, Any]:
    return {
        "user": {"id": member.user_id, "username": member.username},
        "offset": offset,
        "length": length,
    }


def mentions_insert(messages: Sequence[Message]) -> None:
    """Store the mentions ``mentions_prepare`` found in messages now stored: one INSERT for
    all of them, none if there are none."""
    rows = [
        Mention(
            message_id=message.pk,
            session_id=message.session_id,
            seq=message.seq,
            user_id=found.member.user_id,
            offset=found.offset,
            length=found.length,
        )
        for message in messages
        for found in message.found_mentions
    ]
    if rows:
        Mention.objects.bulk_create(rows)


def mentions_replace(message: Message, *, previous_content: str) -> None:
    """An edited message's mentions: those of its new text, in place of the old ones. A
    text without an ``@`` had none to delete, and a new one without an ``@`` reads nothing
    (``mentions_prepare``), so most edits cost no statement here."""
    if "@" in previous_content:
        Mention.objects.filter(message_id=message.pk).delete()
    mentions_prepare([message])
    mentions_insert([message])


def notifications_on_commit(
    *, allocated: Allocated, messages: Sequence[Message], frames: Sequence[dict]
) -> None:
    """After commit, ``notification:new`` to each member who should hear of each new
    message, on every worker: those whose ``notify`` is ``all``, and those it names unless
    theirs is ``none``; never its author. Not durable: a member away gets the counts from
    the session list. ``frames``: the messages' logged ``message:new`` frames, whose
    message objects are already made to fit a frame."""
    sends: list[tuple[str, str]] = []
    for message, frame in zip(messages, frames, strict=True):
        if not _parsed(message):
            continue  # an answer starts empty: its question was the news
        recipients = dict.fromkeys(allocated.notify_all, False)
        for user_id, notify in message.mentioned.items():
            if notify != Membership.Notify.NONE:
                recipients[user_id] = True
        recipients.pop(message.author_id, None)
        if not recipients:
            continue
        texts = {
            mentioned: encode(
                {
                    "event": event_types.NOTIFICATION_NEW,
                    "data": event_types.notification_new(
                        session_id=message.session_id,
                        session_title=allocated.title,
                        message=frame["data"]["message"],
                        mentioned=mentioned,
                    ),
                }
            )
            for mentioned in set(recipients.values())
        }
        sends += [(group_for_user(user), texts[named]) for user, named in recipients.items()]
    if sends:
        transaction.on_commit(lambda: _publish(sends))


def _publish(sends: list[tuple[str, str]]) -> None:
    for group, text in sends:
        broadcaster.publish(group, {"type": FRAME_MESSAGE_TYPE, "text": text})


def membership_notify_set(*, user, session_id, notify: str) -> str:
    """Set which of the session's messages notify the caller (``all``, ``mentions``,
    ``none``): theirs alone, so any member may."""
    if notify not in NOTIFY_CHOICES:
        raise validation_error(
            f"notify must be one of {', '.join(NOTIFY_CHOICES)}.",
            {"notify": [f"Choose one of {', '.join(NOTIFY_CHOICES)}."]},
        )
    session_get_for_member(user=user, session_id=session_id)
    Membership.objects.filter(session_id=session_id, user_id=user.pk).update(notify=notify)
    return notify
