"""Who is online, as members of a session see it.

A user is online while any of their connections is open on any worker: the gateway keeps
that in the shared state (``chat.state``), with entries that expire on their own so a
killed worker can't leave a user stuck online.
"""

from __future__ import annotations

from .member_rows import member_rows, render_presence
from .models import ChatSession
from .state import get_state


def presence_for_session(*, session: ChatSession) -> list[dict]:
    rows = member_rows(session.pk)
    online = get_state().online(row.user_id for row in rows)
    return [render_presence(row, online=row.user_id in online) for row in rows]
