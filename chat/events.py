"""The session event log and the broadcast that follows a commit.

Every durable event (``message:new``, ``message:edited``, ``message:deleted``,
``message:reaction:update``) takes the session's next ``seq``, is stored as a
``SessionEvent`` row in the same transaction as the change, and is sent to the session's
group only once that transaction commits: a rolled-back write never reaches a client, and a
client that missed a broadcast (the channel layer is at-most-once) replays the log by seq.

Frames are encoded to JSON once here; consumers forward the text as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
from django.db import transaction

from . import broadcaster
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

    @property
    def seqs(self) -> range:
        return range(self.seq - self.count + 1, self.seq + 1)

    @classmethod
    def of(cls, seq: int, members, *, count: int) -> Allocated:
        """From the seq statement's row: the members come as a JSON array (as text from
        SQLite), NULL when there are none."""
        if isinstance(members, str):
            members = orjson.loads(members)
        return cls(seq=seq, member_ids=members or [], count=count)


class Event(NamedTuple):
    """A durable event to append: its name, its data and the message it is about."""

    name: str
    data: dict[str, Any]
    message_id: Any = None


_SEQ_SQL = (
    "UPDATE {session} SET last_seq = last_seq + %s{touch} WHERE id = %s{guard} "
    "RETURNING last_seq, (SELECT {members} FROM {membership} WHERE session_id = %s) AS members"
)
_SENDER_GUARD = " AND EXISTS (SELECT 1 FROM {membership} WHERE session_id = %s AND user_id = %s)"
# The members as one JSON array, an aggregate both databases have under different names.
_MEMBERS_AGGREGATE = {"postgresql": "json_agg(user_id)", "sqlite": "json_group_array(user_id)"}


def seq_allocate(
    *, session_id, message_at=None, top_level: bool = False, sender=None, count: int = 1
) -> Allocated:
    """Take the session's next seq, or its next ``count`` seqs. Must run inside the
    transaction that uses them.

    The UPDATE locks the session row until commit, so concurrent writers are serialised and
    seqs appear in commit order with no duplicates and no gaps. ``RETURNING`` (PostgreSQL,
    SQLite >= 3.35) reads the new value in the same statement, and the session's members
    with it (whom the event is queued for while they have no connection). With
    ``message_at`` the session's ``last_message_at`` moves too, and with ``top_level`` (the
    seqs are new top-level messages') its ``message_count`` goes up by ``count``, in that
    one statement: the counter commits or rolls back with the messages.

    With ``sender``, the statement also checks that the sender is a member, so a send needs
    no read before it: None if not (or if there is no such session), and nothing changed.
    The caller raises ``permissions.sender_refusal`` once out of its transaction: raised
    inside a block with no savepoint, it would doom an enclosing transaction too.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("seq_allocate() must be called inside transaction.atomic()")
    sql, params = seq_statement(
        session_id=session_id,
        message_at=message_at,
        top_level=top_level,
        sender=sender,
        count=count,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        if sender is not None:
            return None
        raise ChatSession.DoesNotExist(f"No session {session_id}")
    return Allocated.of(*row, count=count)


def seq_statement(
    *, session_id, message_at=None, top_level: bool = False, sender=None, count: int = 1
) -> tuple[str, list]:
    """The SQL and parameters of ``seq_allocate``'s statement, whose row is ``last_seq``
    and ``members`` (``chat.append_statement`` runs it as part of a larger one)."""
    connection = transaction.get_connection()
    membership = connection.ops.quote_name(Membership._meta.db_table)
    session_pk = ChatSession._meta.pk.get_db_prep_value(session_id, connection)
    params: list = [count]
    touch = ""
    if message_at is not None:
        touch = ", last_message_at = %s"
        params.append(
            ChatSession._meta.get_field("last_message_at").get_db_prep_value(message_at, connection)
        )
    if top_level:
        touch += ", message_count = message_count + %s"
        params.append(count)
    params.append(session_pk)
    guard = ""
    if sender is not None:
        guard = _SENDER_GUARD.format(membership=membership)
        params += [session_pk, sender.pk]
    params.append(session_pk)
    sql = _SEQ_SQL.format(
        session=connection.ops.quote_name(ChatSession._meta.db_table),
        touch=touch,
        guard=guard,
        members=_MEMBERS_AGGREGATE[connection.vendor],
        membership=membership,
    )
    return sql, params


def encode(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


# Where a logged frame carries its seq.
FRAME_SEQ_PATH = ("seq",)


def event_log_rows(*, session_id, events: Sequence[Event], seqs) -> list[SessionEvent]:
    """The log rows of ``events`` under ``seqs``, one each in order; each row's ``frame`` is
    the frame its event is broadcast as. A seq of None is written into the row and its frame
    by the statement that stores them (``chat.append_statement``)."""
    rows = []
    for event, seq in zip(events, seqs, strict=True):
        frame = {"event": event.name, "data": event.data, "seq": seq}
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


def logged_broadcast_on_commit(*, session_id, rows: Sequence[SessionEvent], member_ids) -> None:
    """Broadcast logged events to the session in order once stored, queued for those of
    ``member_ids`` with no connection then."""
    group = group_for_session(session_id)
    for row in rows:
        broadcast_on_commit(group, row.frame, queue_for=member_ids)


def events_append(
    *, session_id, allocated: Allocated, events: Sequence[Event]
) -> list[dict[str, Any]]:
    """Store durable events under the ``allocated`` seqs, one each in order, in one
    statement, and broadcast them to the session in that order after commit, queued for the
    members it names that have no connection then."""
    rows = event_log_rows(session_id=session_id, events=events, seqs=allocated.seqs)
    SessionEvent.objects.bulk_create(rows)
    logged_broadcast_on_commit(session_id=session_id, rows=rows, member_ids=allocated.member_ids)
    return [row.frame for row in rows]


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
    if exclude_user is not None:
        message["exclude"] = exclude_user
    try:
        await broadcaster.send(group, message)
    except Exception:
        logger.warning("broadcast to %s failed", group, exc_info=True)
