"""Sending, editing, deleting and restoring messages."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone

from chatproject.errors import forbidden, validation_error

from .. import event_types
from ..append_statement import Increment, Row, append_execute, row_prepare
from ..content import content_clean
from ..events import (
    FRAME_SEQ_PATH,
    Event,
    event_log_rows,
    event_record,
    events_append,
    logged_broadcast_on_commit,
    seq_allocate,
    seq_statement,
)
from ..models import Message, MessageEdit, SessionEvent
from ..permissions import can_manage, membership_require, sender_refusal
from ..selectors import (
    message_get,
    message_get_for_member,
    session_get_for_member,
    thread_root_get,
)
from ..serializers import render_message


def _mark_new(message: Message) -> None:
    """Let a message just created render without reading it back: it has no reactions and
    no attachments yet, so the lists ``messages_with_details`` would load are empty."""
    message.reaction_list = []
    message.attachment_list = []


def _existing_by_client_id(*, session_id, author, client_id) -> Message | None:
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
    constraint: repeats are rare (a client's retry), and every send would pay for a read."""
    message = message_prepare(
        author=author,
        session_id=session_id,
        content=content,
        parent_id=parent_id,
        client_id=client_id,
    )
    try:
        # Inside a caller's transaction a savepoint costs two round trips; it is needed only
        # to recover from a clientId race, below.
        stored = messages_store([message], sender=author, savepoint=bool(client_id))
    except IntegrityError:
        # The clientId was used before (a retry), or two sends with it raced.
        if existing := _existing_by_client_id(
            session_id=session_id, author=author, client_id=client_id
        ):
            return existing
        raise
    if not stored:
        raise sender_refusal(user=author, session_id=session_id)
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

    On PostgreSQL that is one statement (``chat.append_statement``). Elsewhere it is a
    transaction of one seq statement, one INSERT for the messages and one for their events
    however many there are (one to count them in their thread, one per row of ``also``).

    With ``sender``, the seq statement checks that the sender is a member: False if not, and
    nothing stored. The caller raises ``permissions.sender_refusal`` (``seq_allocate`` says
    why). With ``savepoint``, a failure (a repeated clientId) leaves the caller's
    transaction usable."""
    for message in messages:
        _mark_new(message)
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        with transaction.atomic(savepoint=savepoint):
            return _store_statement_by_statement(messages, sender=sender, also=also)
    if savepoint and connection.in_atomic_block:
        with transaction.atomic():
            return _store_in_one_statement(messages, sender=sender, also=also)
    return _store_in_one_statement(messages, sender=sender, also=also)


def _store_statement_by_statement(messages: list[Message], *, sender, also) -> bool:
    first = messages[0]
    allocated = seq_allocate(
        session_id=first.session_id,
        message_at=timezone.now(),
        top_level=first.parent_id is None,
        sender=sender,
        count=len(messages),
    )
    if allocated is None:
        return False
    for message, seq in zip(messages, allocated.seqs, strict=True):
        message.seq = seq
    Message.objects.bulk_create(messages)
    if first.parent_id is not None:
        Message.objects.filter(pk=first.parent_id).update(
            reply_count=F("reply_count") + len(messages)
        )
    events_append(
        session_id=first.session_id, allocated=allocated, events=_new_message_events(messages)
    )
    for row in also:
        type(row).objects.bulk_create([row])
    return True


# Where a ``message:new`` frame carries its seq: its own, and its message's.
_MESSAGE_NEW_SEQ_PATHS = (FRAME_SEQ_PATH, ("data", "message", "seq"))


def _store_in_one_statement(messages: list[Message], *, sender, also) -> bool:
    first = messages[0]
    count = len(messages)
    seq_sql, seq_params = seq_statement(
        session_id=first.session_id,
        message_at=timezone.now(),
        top_level=first.parent_id is None,
        sender=sender,
        count=count,
    )
    for message in messages:
        # Rendered below before it is stored: with the timestamps it will be stored with.
        row_prepare(message)
    logged = event_log_rows(
        session_id=first.session_id, events=_new_message_events(messages), seqs=[None] * count
    )
    rows = [Row(message, seq=index) for index, message in enumerate(messages)]
    rows += [
        Row(row, seq=index, seq_in={"frame": _MESSAGE_NEW_SEQ_PATHS})
        for index, row in enumerate(logged)
    ]
    rows += [Row(row) for row in also]
    increments = []
    if first.parent_id is not None:
        increments.append(Increment(Message, first.parent_id, "reply_count", count))
    allocated = append_execute(
        seq_sql=seq_sql, seq_params=seq_params, count=count, rows=rows, increments=increments
    )
    if allocated is None:
        return False
    logged_broadcast_on_commit(
        session_id=first.session_id, rows=logged, member_ids=allocated.member_ids
    )
    return True


def _new_message_events(messages: list[Message]) -> list[Event]:
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
            body.update(content="", metadata={}, reactions=[], attachments=[], isDeleted=True)
            event.save(update_fields=["frame"])


def message_delete(*, user, message_id) -> Message:
    """Soft-delete: the author, the session's owner/admins or staff. Deleting twice is a no-op."""
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
