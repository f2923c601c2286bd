"""Reads for a session's export: its messages in keyset pages, each thread under its root.

An export reads a session of any size, so it never loads the whole of it: each page is a
bounded number of rows read by ``seq`` cursors, and what a page needs of the previous one
is an ``ExportCursor``. The order is the reading order of a transcript: the top-level
messages by ``seq``, each followed by its replies by ``seq`` (threads are one level deep).

A page takes top-level messages (roots) while their threads fit in it, using the count each
root keeps (``Message.reply_count``), and reads the replies of those roots in one query. A
thread larger than what is left of the page is read in part, and the next pages carry on
inside it (the cursor names the root and the last reply given) before going on with the
roots after it. So a page is at most ``size`` messages and a fixed number of queries
(``EXPORT_PAGE_QUERIES``), however the session is shaped.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import QuerySet

from .models import Attachment, ChatSession, Membership, Message

EXPORT_PAGE_SIZE = 500

# The most queries one page runs: the rest of an open thread, the roots, the whole threads
# of the roots taken, the start of a thread left open, the attachments.
EXPORT_PAGE_QUERIES = 5

_FIELDS = (
    "id", "session_id", "seq", "author_id", "author__username", "author__is_bot", "agent_id",
    "role", "content", "metadata", "tokens", "parent_id", "reply_count", "is_edited",
    "edited_at", "is_deleted", "deleted_at", "created_at",
)  # fmt: skip


@dataclass(frozen=True)
class ExportCursor:
    """Where the previous page stopped: after the root ``root_seq`` and, while that root's
    thread is still being read (``reply_seq`` set), after its reply ``reply_seq``."""

    root_seq: int = 0
    root_id: uuid.UUID | None = None
    reply_seq: int | None = None


@dataclass
class ExportPage:
    """Messages in transcript order, the attachments of the live ones by message id, and
    the cursor of the next page (None: this was the last)."""

    messages: list[Message]
    attachments: dict[uuid.UUID, list[Attachment]] = field(default_factory=dict)
    next: ExportCursor | None = None


def _messages() -> QuerySet[Message]:
    return Message.objects.select_related("author").only(*_FIELDS)


def _replies(root_id, *, after_seq: int, limit: int) -> list[Message]:
    rows = _messages().filter(parent_id=root_id, seq__gt=after_seq).order_by("seq")
    return list(rows[:limit])


def export_page(
    *, session_id, after: ExportCursor | None = None, size: int = EXPORT_PAGE_SIZE
) -> ExportPage:
    """The page of the session's transcript after ``after`` (None: the first page): at most
    ``size`` messages (``size`` >= 2, so a root and one reply always fit)."""
    cursor = after or ExportCursor()
    out: list[Message] = []
    if cursor.reply_seq is not None:
        rest = _replies(cursor.root_id, after_seq=cursor.reply_seq, limit=size + 1)
        if len(rest) > size:
            out = rest[:size]
            return _finish(out, ExportCursor(cursor.root_seq, cursor.root_id, out[-1].seq))
        out = rest
        cursor = ExportCursor(cursor.root_seq)
    budget = size - len(out)
    if budget < 2:
        return _finish(out, cursor)
    roots = list(
        _messages()
        .filter(session_id=session_id, parent__isnull=True, seq__gt=cursor.root_seq)
        .order_by("seq")[:budget]
    )
    if not roots:
        return _finish(out, None)
    taken, open_root, used = [], None, 0
    for root in roots:
        room = budget - used
        if taken and (room < 1 or (root.reply_count and room < 2)):
            break
        taken.append(root)
        used += 1
        if root.reply_count > budget - used:
            open_root = root
            break
        used += root.reply_count
    # Every root taken whole, not only those counting replies: a count that drifted would
    # cost the page a few more rows, never a thread left out.
    whole = [root.pk for root in taken if root is not open_root]
    threads: dict[uuid.UUID, list[Message]] = defaultdict(list)
    if whole:
        for reply in _messages().filter(parent_id__in=whole).order_by("seq"):
            threads[reply.parent_id].append(reply)
    following = ExportCursor(taken[-1].seq)
    if open_root is not None:
        start = _replies(open_root.pk, after_seq=0, limit=budget - used + 1)
        if len(start) > budget - used:
            start = start[: budget - used]
            following = ExportCursor(open_root.seq, open_root.pk, start[-1].seq)
        threads[open_root.pk] = start
    for root in taken:
        out.append(root)
        out.extend(threads.get(root.pk, ()))
    more = following.reply_seq is not None or len(taken) < len(roots) or len(roots) == budget
    return _finish(out, following if more else None)


def _finish(messages: list[Message], following: ExportCursor | None) -> ExportPage:
    """The page, with the attachments of its live messages (a tombstone shows none)."""
    live = [message.pk for message in messages if not message.is_deleted]
    attachments: dict[uuid.UUID, list[Attachment]] = defaultdict(list)
    if live:
        for attachment in Attachment.objects.filter(message_id__in=live).order_by(
            "created_at", "id"
        ):
            attachments[attachment.message_id].append(attachment)
    return ExportPage(messages=messages, attachments=dict(attachments), next=following)


@dataclass(frozen=True)
class ExportHead:
    """What an export says of the session before its messages."""

    session: ChatSession
    members: list[Membership]


def export_head(*, session: ChatSession) -> ExportHead:
    """The session's members (with their users), in the order they joined."""
    members = list(Membership.objects.filter(session=session).select_related("user").order_by("id"))
    return ExportHead(session=session, members=members)
