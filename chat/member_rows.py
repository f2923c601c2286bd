"""A session's members read as rows and rendered straight to their wire shapes: what a
``session:join`` and ``GET /api/chat/sessions/:id/presence`` read for rooms of hundreds.

Loading a room's memberships with their users as model instances and rendering them through
DRF costs tens of milliseconds for a few hundred members, all of it holding the interpreter
lock the worker's event loop needs. Here one query returns plain tuples and two small
functions render them: a member in ``MemberSerializer``'s shape (a test holds them equal),
a presence entry with the user as ``render_user`` gives it.
"""

from __future__ import annotations

from typing import NamedTuple

from .models import Membership
from .serializers import iso

FIELDS = (
    "user_id",
    "user__username",
    "role",
    "last_seen_seq",
    "last_delivered_seq",
    "user__last_seen_at",
)


class MemberRow(NamedTuple):
    user_id: int
    username: str
    role: str
    last_seen_seq: int
    last_delivered_seq: int
    last_seen_at: object


def member_rows(session_id) -> list[MemberRow]:
    """The session's members in the order they joined, in one query."""
    rows = Membership.objects.filter(session_id=session_id).order_by("id").values_list(*FIELDS)
    return [MemberRow(*row) for row in rows]


def render_member(row: MemberRow) -> dict:
    """``MemberSerializer``'s shape."""
    return {
        "id": row.user_id,
        "username": row.username,
        "role": row.role,
        "lastSeenSeq": row.last_seen_seq,
        "lastDeliveredSeq": row.last_delivered_seq,
    }


def render_presence(row: MemberRow, *, online: bool) -> dict:
    """A member's presence: ``{user, status, lastSeenAt}``."""
    return {
        "user": {"id": row.user_id, "username": row.username},
        "status": "online" if online else "offline",
        "lastSeenAt": iso(row.last_seen_at),
    }
