"""What a client receives when it joins a session: the session, its members and their
presence, and every durable event it missed since ``lastSeq`` (CONTRACT ``session:join``)."""

from __future__ import annotations

from .extensions import active_streams
from .presence import presence_entry
from .selectors import events_after, session_get_for_member, session_with_members
from .serializers import SessionSerializer
from .state import get_state

REPLAY_LIMIT = 500


def session_join_snapshot(*, user, session_id, last_seq: int | None) -> dict:
    """Read after the connection is in the session's group, so any event committed from
    here on arrives live too: the client drops duplicates by seq, and nothing falls between."""
    session = session_with_members(session_get_for_member(user=user, session_id=session_id).pk)
    members = [m.user for m in session.memberships.all()]
    online = get_state().online(u.pk for u in members)
    missed, has_more = ([], False)
    if last_seq is not None:
        missed, has_more = events_after(
            session_id=session.pk, last_seq=last_seq, limit=REPLAY_LIMIT
        )
    session_data = SessionSerializer(session).data
    return {
        "session": session_data,
        "members": session_data["members"],
        "presence": [presence_entry(u, online=u.pk in online) for u in members],
        "lastSeq": session.last_seq,
        "missed": missed,
        "hasMore": has_more,
        "activeStreams": active_streams(session.pk),
    }
