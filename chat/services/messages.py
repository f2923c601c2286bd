"""Sending, editing, deleting and restoring messages."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone

from chatproject.errors import forbidden, validation_error

from .. import event_types
from ..content import content_clean
from ..events import Event, event_record, events_append, seq_allocate
from ..extensions import people_messages_sent
from ..models import Message, MessageEdit, Pin, SessionEvent
from ..permissions import can_manage, membership_require, sender_refusal
from ..selectors import (
    message_get,
    message_get_for_member,
    session_get_for_member,
    thread_root_get,
)
from ..serializers import render_message
from .mentions import mentions_insert, mentions_prepare, mentions_replace, notifications_on_commit


def _mark_new(message: Message) -> None:
    """Let a message just created render without reading it back: it has no reactions and
    no attachments yet, so the lists ``messages_with_details`` would load are empty (its
    mentions were found before it was stored: ``mentions_prepare``)."""
    message.reaction_list = []
    message.attachment_list = []


def message_by_client_id(*, session_id, author, client_id) -> Message | None:
    """The message ``author`` sent in the session under ``client_id``, if any."""
    if not client_id:
        return None
    found = Message.objects.filter(
        session_id=session_id, author_id=author.pk, client_id=client_id
    ).values_list("pk", flat=True)
    return message_get(found[0]) if found else None


def message_prepare(
    *,
    author,
    session_id,
    content: str,
    parent_id=None,
    client_id: str | None = None,
    message_id=None,
) -> Message:
    """A member's message as ``messages_store`` will store it: its text through the content
    filter and, for a reply, its thread root; ``message_id`` names it up front. A reply
    checks the membership before it reads the thread, so a non-member learns nothing of the
    session's messages; a top-level message reads nothing (its seq statement checks the
    membership)."""
    text, flagged = content_clean(content)
    root = None
    if parent_id is not None:
        session_get_for_member(user=author, session_id=session_id)
        root = thread_root_get(session_id=session_id, parent_id=parent_id)
    return Message(
        session_id=session_id,
        author=author,
        content=text,
        parent=root,
        is_flagged=flagged,
        client_id=client_id or None,
        **({"id": message_id} if message_id is not None else {}),
    )


def message_send(
    *, author, session_id, content: str, parent_id=None, client_id: str | None = None
) -> Message:
    """Store a message and broadcast ``message:new``. A repeated ``client_id`` from the same
    author returns the first message instead of storing a duplicate.

    A top-level send reads nothing first: the statement that takes the seq also checks the
    membership (``seq_allocate``), and a repeat is found by the database's unique
    constraint: repeats are rare (a client's retry), and every send would pay for a read.
    ``chat.services.message_batch`` sends many at once. A new message is then told to the
    listeners of people's messages (``chat.extensions``)."""
    message = message_prepare(
        author=author,
        session_id=session_id,
        content=content,
        parent_id=parent_id,
        client_id=client_id,
    )
    stored = message_store_one(message, author=author)
    if stored is message:
        people_messages_sent([stored])
    return stored


def message_store_one(message: Message, *, author) -> Message:
    """Store a prepared message of ``author`` (``message_prepare``): the message, or the
    first one stored with its clientId; FORBIDDEN or NOT_FOUND if the author may not write
    in its session."""
    client_id = message.client_id
    try:
        # Inside a caller's transaction a savepoint costs two round trips; it is needed only
        # to recover from a clientId race, below.
        stored = messages_store([message], sender=author, savepoint=bool(client_id))
    except IntegrityError:
        # The clientId was used before (a retry), or two sends with it raced.
        if existing := message_by_client_id(
            session_id=message.session_id, author=author, client_id=client_id
        ):
            return existing
        raise
    if not stored:
        raise sender_refusal(user=author, session_id=message.session_id)
    return message


def messages_store(
    messages: list[Message],
    *,
    sender=None,
    also: Sequence[models.Model] = (),
    savepoint: bool = False,
) -> bool:
    """Insert new messages of one session, all top-level or all replies in one thread, under
    its next seqs in order, log their ``message:new``, and insert ``also`` (new rows of
    other models that belong with them, such as a stream's). Atomic by itself, or part of
    the caller's transaction if there is one; their broadcasts follow its commit.

    One transaction: the seq statement (which returns the members too), one INSERT for the
    messages and one for their events however many there are, one UPDATE to count replies
    in their thread, one INSERT per model of ``also``; for a text with an ``@``, one SELECT
    of the members it names and one INSERT of its mentions. Members who should hear of
    the messages get ``notification:new`` after commit (``chat.services.mentions``).

    With ``sender``, the seq statement checks that the sender is a member: False if not, and
    nothing stored. The caller raises ``permissions.sender_refusal`` (``seq_allocate`` says
    why). With ``savepoint``, a failure (a repeated clientId) leaves the caller's
    transaction usable."""
    first = messages[0]
    count = len(messages)
    with transaction.atomic(savepoint=savepoint):
        mentions_prepare(messages)
        allocated = seq_allocate(
            session_id=first.session_id,
            count=count,
            top_level=count if first.parent_id is None else 0,
            message_at=timezone.now(),
            sender=sender,
            notify=True,
        )
        if allocated is None:
            return False
        for message, seq in zip(messages, allocated.seqs, strict=True):
            message.seq = seq
        messages_insert(messages)
        frames = events_append(
            session_id=first.session_id, allocated=allocated, events=new_message_events(messages)
        )
        notifications_on_commit(allocated=allocated, messages=messages, frames=frames)
        by_model: dict[type[models.Model], list[models.Model]] = {}
        for row in also:
            by_model.setdefault(type(row), []).append(row)
        for model, rows in by_model.items():
            model.objects.bulk_create(rows)
    return True


def messages_insert(messages: list[Message]) -> None:
    """Insert new messages that have their seqs, in one INSERT, with their mentions (one
    INSERT for all, if any: ``mentions_prepare`` found them), and count the replies among
    them in their threads (one UPDATE per thread)."""
    Message.objects.bulk_create(messages)
    mentions_insert(messages)
    replies: dict = {}
    for message in messages:
        _mark_new(message)
        if message.parent_id is not None:
            replies[message.parent_id] = replies.get(message.parent_id, 0) + 1
    for parent_id, count in replies.items():
        Message.objects.filter(pk=parent_id).update(reply_count=F("reply_count") + count)


def new_message_events(messages: list[Message]) -> list[Event]:
    """The ``message:new`` events of messages just stored."""
    return [
        Event(event_types.MESSAGE_NEW, event_types.message_new(render_message(message)), message.pk)
        for message in messages
    ]


def message_edit(*, user, message_id, content: str) -> Message:
    """Change a message's text: its author only. The old text is kept as a ``MessageEdit``."""
    message = message_get_for_member(user=user, message_id=message_id)
    if message.author_id != user.pk:
        raise forbidden("Only the author can edit a message.")
    if message.is_deleted:
        raise validation_error("A deleted message can't be edited.")
    text, flagged = content_clean(content)
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if locked.content == text:
            return message
        MessageEdit.objects.create(message=locked, previous_content=locked.content, editor=user)
        now = timezone.now()
        changes = {"content": text, "is_edited": True, "edited_at": now, "updated_at": now}
        if flagged:
            changes["is_flagged"] = True
        Message.objects.filter(pk=locked.pk).update(**changes)
        previous_content, locked.content = locked.content, text
        mentions_replace(locked, previous_content=previous_content)
        message = message_get(locked.pk)
        event_record(
            session_id=message.session_id,
            event=event_types.MESSAGE_EDITED,
            data=event_types.message_edited(render_message(message)),
            message_id=message.pk,
        )
    return message


def _redact_log(message: Message) -> None:
    """Blank the message's text in the frames already logged for it, so a replay after the
    delete does not hand the deleted text back out."""
    for event in SessionEvent.objects.filter(message=message).only("frame"):
        body = event.frame.get("data", {}).get("message")
        if body:
            body.update(
                content="", metadata={}, reactions=[], attachments=[], mentions=[], isDeleted=True
            )
            event.save(update_fields=["frame"])


def message_delete(*, user, message_id) -> Message:
    """Soft-delete: the author, the session's owner/admins or staff. Deleting twice is a no-op.
    A pin goes with the message: ``message:deleted`` tells clients to drop it too."""
    message = message_get(message_id)
    membership = (
        None if user.is_staff else membership_require(user=user, session_id=message.session_id)
    )
    if message.author_id != user.pk and not can_manage(user=user, membership=membership):
        raise forbidden("Only the author or a moderator can delete this message.")
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if locked.is_deleted:
            return message
        now = timezone.now()
        Message.objects.filter(pk=locked.pk).update(is_deleted=True, deleted_at=now, updated_at=now)
        Pin.objects.filter(message_id=locked.pk).delete()
        _redact_log(locked)
        event_record(
            session_id=locked.session_id,
            event=event_types.MESSAGE_DELETED,
            data=event_types.message_deleted(session_id=locked.session_id, message_id=locked.pk),
            message_id=locked.pk,
        )
    return message_get(message.pk)


def message_restore(*, moderator, message_id) -> Message:
    """Undo a soft delete (staff): the message comes back to clients as ``message:edited``."""
    if not moderator.is_staff:
        raise forbidden("Only staff can restore messages.")
    message = message_get(message_id)
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if not locked.is_deleted:
            return message
        Message.objects.filter(pk=locked.pk).update(
            is_deleted=False, deleted_at=None, updated_at=timezone.now()
        )
        message = message_get(locked.pk)
        event_record(
            session_id=message.session_id,
            event=event_types.MESSAGE_EDITED,
            data=event_types.message_edited(render_message(message)),
            message_id=message.pk,
        )
    return message
