"""Many members' messages sent at once, in one transaction (``chat.send_writer`` gathers
them): ``message_send`` for a list, as Zulip's ``do_send_messages`` takes one.

Each request gets what ``message_send`` would have given it: its message, the first message
sent with its clientId, or the same ``DomainError`` (NOT_FOUND, FORBIDDEN, a bad parent,
CONTENT_REJECTED, ...), and a failing request fails alone. The requests of one session take
its seqs in the order given.

What is stored, however many requests and sessions: one read of the clientIds already used,
one of the sessions' members, one seq statement per session, one INSERT of all the messages,
one of all their logged events (and one UPDATE per thread replied to). A write that fails
all the same (two sends with one clientId racing on another worker, a deadlock) rolls the
transaction back, and the requests are then stored one by one, each with its own outcome.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.db import DatabaseError, transaction
from django.utils import timezone

from chatproject.errors import DomainError, not_found

from ..events import Allocated, Append, events_append_all, seq_take
from ..models import Membership, Message
from ..permissions import sender_refusal
from ..selectors import message_get
from .messages import message_prepare, message_store_one, messages_insert, new_message_events

logger = logging.getLogger(__name__)


class SendRequest(NamedTuple):
    """One ``message:send``: ``message_send``'s arguments."""

    author: Any
    session_id: Any
    content: str
    parent_id: Any = None
    client_id: str | None = None


Outcome = Message | Exception


def messages_send_batch(requests: Sequence[SendRequest]) -> list[Outcome]:
    """Store the requests' messages and broadcast their ``message:new`` after commit; per
    request, in order, its message or the exception ``message_send`` would have raised."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    prepared: list[tuple[int, Message]] = []
    first_with: dict[tuple, int] = {}
    repeats: dict[int, int] = {}
    for index, request in enumerate(requests):
        try:
            message = message_prepare(
                author=request.author,
                session_id=_session_id(request.session_id),
                content=request.content,
                parent_id=request.parent_id,
                client_id=request.client_id,
            )
        except Exception as error:  # the request's own outcome, raised to its caller
            outcomes[index] = error
            continue
        if message.client_id:
            key = (message.session_id, message.author_id, message.client_id)
            if key in first_with:
                # The same clientId twice in one batch: the second gets the first's answer.
                repeats[index] = first_with[key]
                continue
            first_with[key] = index
        prepared.append((index, message))
    prepared = _without_repeats(prepared, outcomes)
    if prepared:
        _store(prepared, requests, outcomes)
    for index, first in repeats.items():
        outcomes[index] = outcomes[first]
    return outcomes


def _session_id(value) -> uuid.UUID:
    """A session id as the database returns it (a malformed one is NOT_FOUND, as
    ``session_get_for_member`` answers)."""
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError as exc:
        raise not_found("Session") from exc


def _without_repeats(prepared, outcomes) -> list[tuple[int, Message]]:
    """The prepared messages whose clientId was not used before, in one read; the others'
    outcome is the message first sent with it."""
    client_ids = {message.client_id for _, message in prepared if message.client_id}
    if not client_ids:
        return prepared
    # Each column narrowed to the batch's values: the unique constraint's index
    # (session, author, client_id) answers it.
    used = {
        (session_id, author_id, client_id): pk
        for session_id, author_id, client_id, pk in Message.objects.filter(
            session_id__in={message.session_id for _, message in prepared},
            author_id__in={message.author_id for _, message in prepared},
            client_id__in=client_ids,
        ).values_list("session_id", "author_id", "client_id", "pk")
    }
    fresh = []
    for index, message in prepared:
        pk = used.get((message.session_id, message.author_id, message.client_id))
        if pk is None:
            fresh.append((index, message))
        else:
            outcomes[index] = message_get(pk)
    return fresh


def _store(prepared, requests, outcomes) -> None:
    try:
        with transaction.atomic():
            refused = _store_together(prepared)
    except DatabaseError:
        logger.info("a batch of %d sends failed; storing them one by one", len(prepared),
                    exc_info=True)  # fmt: skip
        for index, message in prepared:
            outcomes[index] = _store_alone(message, author=requests[index].author)
        return
    for index, message in prepared:
        author = requests[index].author
        if index in refused:
            outcomes[index] = _refusal(author=author, session_id=message.session_id)
        else:
            outcomes[index] = message


def _store_together(prepared: list[tuple[int, Message]]) -> set[int]:
    """Store the messages of members in one go; the indexes of those refused (the author
    is not a member, or there is no such session), which take no seq."""
    by_session: dict[uuid.UUID, list[tuple[int, Message]]] = {}
    for index, message in prepared:
        by_session.setdefault(message.session_id, []).append((index, message))
    members: dict[uuid.UUID, set[int]] = {}
    for session_id, user_id in Membership.objects.filter(
        session_id__in=list(by_session)
    ).values_list("session_id", "user_id"):
        members.setdefault(session_id, set()).add(user_id)
    refused: set[int] = set()
    appends: list[tuple[uuid.UUID, Allocated, list[Message]]] = []
    now = timezone.now()
    # Sessions in one order for every batch: two batches locking the same rows in opposite
    # orders would deadlock.
    for session_id in sorted(by_session):
        ids = members.get(session_id, set())
        accepted = []
        for index, message in by_session[session_id]:
            if message.author_id in ids:
                accepted.append(message)
            else:
                refused.add(index)
        if not accepted:
            continue
        seq = seq_take(
            session_id=session_id,
            count=len(accepted),
            top_level=sum(message.parent_id is None for message in accepted),
            message_at=now,
        )
        if seq is None:
            # The session went away since its members were read.
            refused |= {index for index, _ in by_session[session_id]}
            continue
        allocated = Allocated(seq=seq, member_ids=sorted(ids), count=len(accepted))
        for message, taken in zip(accepted, allocated.seqs, strict=True):
            message.seq = taken
        appends.append((session_id, allocated, accepted))
    messages_insert([message for *_, stored in appends for message in stored])
    events_append_all(
        [
            Append(session_id, allocated, new_message_events(stored))
            for session_id, allocated, stored in appends
        ]
    )
    return refused


def _refusal(*, author, session_id) -> DomainError:
    """Why the author may not write in the session (``sender_refusal`` raises what
    ``session_get_for_member`` answers, and returns the rest)."""
    try:
        return sender_refusal(user=author, session_id=session_id)
    except DomainError as error:
        return error


def _store_alone(message: Message, *, author) -> Outcome:
    try:
        return message_store_one(message, author=author)
    except Exception as error:  # the request's own outcome, raised to its caller
        return error
