"""Who is online, as members of a session see it.

A user is online while any of their connections is open on any worker: the gateway keeps
that in the shared state (``chat.state``), with entries that expire on their own so a
killed worker can't leave a user stuck online.
"""

from __future__ import annotations

from accounts.serializers import render_user

from .models import ChatSession
from .serializers import iso
from .state import get_state


def presence_entry(user, *, online: bool) -> dict:
    return {
        "user": render_user(user),
        "status": "online" if online else "offline",
        "lastSeenAt": iso(user.last_seen_at),
    }


def presence_for_session(*, session: ChatSession) -> list[dict]:
    members = [m.user for m in session.memberships.select_related("user").order_by("id")]
    online = get_state().online(u.pk for u in members)
    return [presence_entry(user, online=user.pk in online) for user in members]
