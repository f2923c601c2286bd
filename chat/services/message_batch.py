"""Many members' messages sent at once, in one transaction (``chat.send_writer`` gathers
them): ``message_send`` for a list, as Zulip's ``do_send_messages`` takes one.

Each request gets what ``message_send`` would have given it: its message, the first message
sent with its clientId, or the same ``DomainError`` (NOT_FOUND, FORBIDDEN, a bad parent,
CONTENT_REJECTED, ...), and a failing request fails alone. The requests of one session take
its seqs in the order given.

What is stored, however many requests and sessions: one seq statement per session (which
also checks the authors' membership: it returns the members), one INSERT of all the
messages, one of all their logged events (and one UPDATE per thread replied to); if any
text has an ``@``, one SELECT of the members named and one INSERT of all the mentions
(``chat.services.mentions``). Nothing else is read first: a repeated clientId (a client's
retry) is found by the unique constraint, and an author who may not write in a session by
the seq statement. Either is rare, so either rolls the transaction back, as does a write
that fails all the same (two sends with one clientId racing on another worker, a
deadlock), and the requests are then stored one by one, each with its own outcome
(``message_store_one``: the first message sent with the clientId, or the refusal).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.db import DatabaseError, transaction
from django.utils import timezone

from chatproject.errors import not_found

from ..events import Allocated, Append, events_append_all, seq_take
from ..extensions import people_messages_sent
from ..models import Message
from .mentions import mentions_prepare, notifications_on_commit
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
    if prepared:
        _store(prepared, requests, outcomes)
        # The messages stored now (not a repeated clientId's first one) go to the listeners.
        people_messages_sent([message for index, message in prepared if outcomes[index] is message])
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


def _store(prepared, requests, outcomes) -> None:
    try:
        with transaction.atomic():
            _store_together(prepared)
    except (DatabaseError, _Refused) as exc:
        logger.info("a batch of %d sends was not stored together (%s); storing them one by one",
                    len(prepared), type(exc).__name__)  # fmt: skip
        for index, message in prepared:
            outcomes[index] = _store_alone(message, author=requests[index].author)
        return
    for index, message in prepared:
        outcomes[index] = message


class _Refused(Exception):
    """An author of the batch may not write in its session (or the session is gone): the
    batch's transaction is rolled back, and each request gets its own answer alone."""


def _store_together(prepared: list[tuple[int, Message]]) -> None:
    """Store the messages in one go, or raise ``_Refused`` (and the caller rolls back)."""
    by_session: dict[uuid.UUID, list[Message]] = {}
    for _, message in prepared:
        by_session.setdefault(message.session_id, []).append(message)
    appends: list[tuple[uuid.UUID, Allocated, list[Message]]] = []
    mentions_prepare([message for _, message in prepared])
    now = timezone.now()
    # Sessions in one order for every batch: two batches locking the same rows in opposite
    # orders would deadlock.
    for session_id in sorted(by_session):
        messages = by_session[session_id]
        allocated = seq_take(
            session_id=session_id,
            count=len(messages),
            top_level=sum(message.parent_id is None for message in messages),
            message_at=now,
            notify=True,
        )
        if allocated is None or not {m.author_id for m in messages} <= set(allocated.member_ids):
            raise _Refused
        for message, taken in zip(messages, allocated.seqs, strict=True):
            message.seq = taken
        appends.append((session_id, allocated, messages))
    messages_insert([message for *_, stored in appends for message in stored])
    logged = events_append_all(
        [
            Append(session_id, allocated, new_message_events(stored))
            for session_id, allocated, stored in appends
        ]
    )
    for (_, allocated, stored), frames in zip(appends, logged, strict=True):
        notifications_on_commit(allocated=allocated, messages=stored, frames=frames)


def _store_alone(message: Message, *, author) -> Outcome:
    try:
        return message_store_one(message, author=author)
    except Exception as error:  # the request's own outcome, raised to its caller
        return error
