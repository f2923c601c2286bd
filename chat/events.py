"""The session event log and the broadcast that follows a commit.

Every durable event (``message:new``, ``message:edited``, ``message:deleted``,
``message:reaction:update``, ``message:pinned``, ``message:unpinned``) takes the session's
next ``seq``, is stored as a ``SessionEvent`` row in the same transaction as the change, and
is sent to the session's group only once that transaction commits: a rolled-back write never
reaches a client, and a client that missed a broadcast (the channel layer is at-most-once)
replays the log by seq.

Frames are encoded to JSON once here; consumers forward the text as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
from django.db import models, transaction

from . import broadcaster, event_types
from .frame_size import fit_event_frame, frame_fits
from .models import ChatSession, Membership, SessionEvent
from .state import get_state
from .timers import connection_timers

logger = logging.getLogger(__name__)

# The message type a consumer handles to forward a pre-encoded frame (``chat_frame``).
FRAME_MESSAGE_TYPE = "chat.frame"


def frame_texts(message: dict[str, Any]) -> list[str]:
    """The encoded frames a ``chat.frame`` message carries: its ``text``, or the ``texts``
    of several the broadcaster sent as one (``chat.broadcaster``)."""
    texts = message.get("texts")
    return texts if texts is not None else [message["text"]]


# How every logged ``message:new`` frame starts (``event_log_rows`` puts the event first).
_MESSAGE_NEW_START = f'{{"event":"{event_types.MESSAGE_NEW}"'


def is_message_new_by(text: str, user_id) -> bool:
    """Whether an encoded frame is the ``message:new`` of a message ``user_id`` wrote."""
    if not text.startswith(_MESSAGE_NEW_START):
        return False
    author = orjson.loads(text)["data"]["message"].get("author")
    return author is not None and author.get("id") == user_id


def group_for_session(session_id) -> str:
    return f"session-{session_id.hex}"


def group_for_user(user_id: int) -> str:
    return f"user-{user_id}"


class Allocated(NamedTuple):
    """The seqs just taken (``count`` of them, ending at ``seq``), and who was a member of
    the session when they were taken."""

    seq: int
    member_ids: list[int]
    count: int = 1
    # Asked for with ``notify`` (a send): the members whose ``notify`` is ``all``, and the
    # session's title, what ``notification:new`` needs (``chat.services.mentions``).
    notify_all: tuple[int, ...] = ()
    title: str = ""

    @property
    def seqs(self) -> range:
        return range(self.seq - self.count + 1, self.seq + 1)


class Event(NamedTuple):
    """A durable event to append: its name, its data and the message it is about."""

    name: str
    data: dict[str, Any]
    message_id: Any = None


# Written as SQL because the ORM can't return what an UPDATE wrote: ``RETURNING`` (PostgreSQL,
# SQLite >= 3.35) hands back the new ``last_seq`` in the statement that takes it, under the
# row lock that orders writers, and with it the session's members (whom the events are
# queued for while they have no connection), so taking seqs is one round trip, not two.
# ``message_count`` grows by the new top-level messages among the seqs (0 for other events),
# ``last_message_at`` moves when a time is given.
_SEQ_SQL = (
    "UPDATE chat_chatsession"
    " SET last_seq = last_seq + %s, message_count = message_count + %s,"
    " last_message_at = COALESCE(%s, last_message_at)"
    " WHERE id = %s"
)
# Only if the sender is a member: a send needs no read before it.
_FOR_SENDER_SQL = (
    " AND EXISTS (SELECT 1 FROM chat_membership WHERE session_id = %s AND user_id = %s)"
)
# The members as one value, per database: an array on PostgreSQL; SQLite has none, so a
# comma-separated text (``_member_ids`` reads either).
_RETURNING_SQL = {
    "postgresql": (
        " RETURNING last_seq, ARRAY(SELECT user_id FROM chat_membership WHERE session_id = %s)"
    ),
    "sqlite": (
        " RETURNING last_seq,"
        " (SELECT group_concat(user_id) FROM chat_membership WHERE session_id = %s)"
    ),
}

# With ``notify``, in the same statement: who hears of every message, and the title.
_NOTIFY_SQL = {
    "postgresql": (
        ", ARRAY(SELECT user_id FROM chat_membership WHERE session_id = %s AND notify = 'all'),"
        " title"
    ),
    "sqlite": (
        ", (SELECT group_concat(user_id) FROM chat_membership"
        " WHERE session_id = %s AND notify = 'all'), title"
    ),
}

# The parameters as the ORM writes these column types on the connection's database (a UUID
# is 32 hex digits on SQLite, a datetime naive UTC text there).
_SESSION_ID = models.UUIDField()
_MESSAGE_AT = models.DateTimeField()


def seq_take(
    *,
    session_id,
    count: int = 1,
    top_level: int = 0,
    message_at=None,
    sender=None,
    notify: bool = False,
) -> Allocated | None:
    """Take the session's next ``count`` seqs: them and the session's members as of then,
    or None if there is no such session (or, with ``sender``, if the sender is not a
    member), and nothing changed. Must run inside the transaction that uses them.

    One statement: the UPDATE locks the session row until commit, so concurrent writers are
    serialised and seqs appear in commit order with no duplicates and no gaps.
    ``top_level``: how many of the seqs are new top-level messages (the session's
    ``message_count`` moves with them, in this statement: the counter commits or rolls back
    with the messages). With ``message_at`` the session's ``last_message_at`` moves too.
    With ``notify`` it also returns what a send's notifications need (``Allocated``).
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("seq_take() must be called inside transaction.atomic()")
    session_pk = _SESSION_ID.get_db_prep_value(session_id, connection)
    params = [count, top_level, _MESSAGE_AT.get_db_prep_value(message_at, connection), session_pk]
    sql = _SEQ_SQL
    if sender is not None:
        sql += _FOR_SENDER_SQL
        params += [session_pk, sender.pk]
    sql += _RETURNING_SQL[connection.vendor]
    params.append(session_pk)
    if notify:
        sql += _NOTIFY_SQL[connection.vendor]
        params.append(session_pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    if notify:
        notify_all, title = tuple(_member_ids(row[2])), row[3]
    else:
        notify_all, title = (), ""
    return Allocated(row[0], _member_ids(row[1]), count, notify_all, title)


def _member_ids(value) -> list[int]:
    if isinstance(value, str):
        return [int(user_id) for user_id in value.split(",")]
    return list(value or ())


def seq_allocate(
    *,
    session_id,
    count: int = 1,
    top_level: int = 0,
    message_at=None,
    sender=None,
    notify: bool = False,
) -> Allocated | None:
    """``seq_take``, with an unknown session an error unless there is a ``sender``.

    With ``sender``: None if the sender is not a member (or if there is no such session),
    and nothing changed. The caller raises ``permissions.sender_refusal`` once out of its
    transaction: raised inside a block with no savepoint, it would doom an enclosing
    transaction too. Without: an unknown session raises ``ChatSession.DoesNotExist``.
    """
    allocated = seq_take(
        session_id=session_id,
        count=count,
        top_level=top_level,
        message_at=message_at,
        sender=sender,
        notify=notify,
    )
    if allocated is None and sender is None:
        raise ChatSession.DoesNotExist(f"No session {session_id}")
    return allocated


def encode(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def event_log_rows(*, session_id, events: Sequence[Event], seqs) -> list[SessionEvent]:
    """The log rows of ``events`` under ``seqs``, one each in order; each row's ``frame`` is
    the frame its event is broadcast as, made to fit the frame cap (``chat.frame_size``):
    an event too large even then raises VALIDATION_ERROR, rolling its change back."""
    rows = []
    for event, seq in zip(events, seqs, strict=True):
        frame = fit_event_frame({"event": event.name, "data": event.data, "seq": seq})
        rows.append(
            SessionEvent(
                session_id=session_id,
                seq=seq,
                event=event.name,
                frame=frame,
                message_id=event.message_id,
            )
        )
    return rows


class Append(NamedTuple):
    """Durable events of one session to store under the seqs ``allocated`` took for them."""

    session_id: Any
    allocated: Allocated
    events: Sequence[Event]


def events_append_all(appends: Sequence[Append]) -> list[list[dict[str, Any]]]:
    """Store the events of several sessions in one INSERT, each under its seqs in order, and
    broadcast each session's events to it in that order after commit, queued for the
    members its ``allocated`` names that have no connection then. The frames, per append."""
    logged = [
        event_log_rows(
            session_id=append.session_id, events=append.events, seqs=append.allocated.seqs
        )
        for append in appends
    ]
    SessionEvent.objects.bulk_create([row for rows in logged for row in rows])
    for append, rows in zip(appends, logged, strict=True):
        group = group_for_session(append.session_id)
        for row in rows:
            broadcast_on_commit(group, row.frame, queue_for=append.allocated.member_ids)
    return [[row.frame for row in rows] for rows in logged]


def events_append(
    *, session_id, allocated: Allocated, events: Sequence[Event]
) -> list[dict[str, Any]]:
    """``events_append_all`` for one session."""
    (frames,) = events_append_all([Append(session_id, allocated, events)])
    return frames


def event_record(*, session_id, event: str, data: dict[str, Any], message_id=None) -> dict:
    """Allocate the next seq and append the event under it."""
    (frame,) = events_append(
        session_id=session_id,
        allocated=seq_allocate(session_id=session_id),
        events=[Event(event, data, message_id)],
    )
    return frame


def broadcast_on_commit(
    group: str, frame: dict[str, Any], *, queue_for_session=None, queue_for=None
) -> None:
    """Send ``frame`` to ``group`` once the current transaction commits (now, if none).

    The members with no open connection then also get the frame in their offline queue,
    delivered when they next connect: those of ``queue_for`` (user ids), or, with
    ``queue_for_session``, the members of that session read after the commit.
    """
    text = encode(frame)
    transaction.on_commit(
        lambda: broadcast_now(group, text, queue_for_session=queue_for_session, queue_for=queue_for)
    )


def broadcast_now(group: str, text: str, *, queue_for_session=None, queue_for=None) -> None:
    """Send an encoded frame to a group from sync code, or from the loop without waiting
    for it (after the sends already queued for that group); failures are logged, not
    raised.

    The write it reports is already committed: a client that misses it replays by seq.
    The send and the offline queueing leave this thread at once (``chat.broadcaster``):
    at most the members are read here, through this thread's database connection.
    """
    if not _fits(group, text):
        return
    if queue_for is None and queue_for_session is not None:
        try:
            queue_for = list(
                Membership.objects.filter(session_id=queue_for_session).values_list(
                    "user_id", flat=True
                )
            )
        except Exception:
            logger.warning("offline queueing for %s failed", group, exc_info=True)
    then = _offline_queueing(queue_for, text) if queue_for else None
    broadcaster.publish(group, {"type": FRAME_MESSAGE_TYPE, "text": text}, then=then)


def _fits(group: str, text: str) -> bool:
    """Whether a frame may go to a group: one over the frame cap would close every socket
    it reached (and be queued for members who are away). Refused once, here, with one log
    line; events are made to fit before they get this far (``chat.frame_size``)."""
    if frame_fits(text):
        return True
    logger.error("a %d-character frame for %s is over the frame cap: not sent", len(text), group)
    return False


def _offline_queueing(member_ids: list[int], text: str):
    """The follow-up that queues ``text`` for those of ``member_ids`` with no connection.
    Members with a connection on this worker are online without asking the shared state:
    in a room whose members are all here, a message costs no round trip for this."""

    async def queue() -> None:
        here = connection_timers()
        elsewhere = [user_id for user_id in member_ids if not here.connected_here(user_id)]
        if elsewhere:
            await get_state().queue_for_offline(elsewhere, text)

    return queue


# The message type a consumer handles when its user was removed from a session
# (``session_removed``): it stops following that session at once.
SESSION_REMOVED_TYPE = "session.removed"


def tell_user_on_commit(user_id: int, message: dict[str, Any]) -> None:
    """Send a channel-layer ``message`` to every connection of a user, on every worker,
    once the current transaction commits; a failure is logged, not raised."""
    transaction.on_commit(lambda: broadcaster.publish(group_for_user(user_id), message))


async def broadcast_async(group: str, frame: dict[str, Any], *, exclude_user=None) -> None:
    """Send a non-durable frame to a group from async code (typing, presence, joins).

    ``exclude_user`` keeps the frame from that user's own connections (a typist does not
    see their own typing).
    """
    message = {"type": FRAME_MESSAGE_TYPE, "text": encode(frame)}
    if not _fits(group, message["text"]):
        return
    if exclude_user is not None:
        message["exclude"] = exclude_user
    try:
        await broadcaster.send(group, message)
    except Exception:
        logger.warning("broadcast to %s failed", group, exc_info=True)
