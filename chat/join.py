"""What a client receives when it joins a session: the session, its members and their
presence, and the durable events it missed since ``lastSeq`` (CONTRACT ``session:join``).

The reply is one frame, so it takes no more than the frame cap (``chat.frame_size``): the
snapshot first, then each running answer's text so far where it leaves room for one more
event (else ``contentOmitted``), then as many missed events as fit, at most
``REPLAY_LIMIT``. ``hasMore`` says there are more: the client joins again from the last seq
it got. Every event fits in half the cap, so each page brings at least one.
"""

from __future__ import annotations

from .extensions import active_streams
from .frame_size import (
    ENVELOPE_ALLOWANCE,
    encoded_size,
    event_max_bytes,
    fit_content,
    frame_max_bytes,
)
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
    session_data = SessionSerializer(session).data
    snapshot = {
        "session": session_data,
        "members": session_data["members"],
        "presence": [presence_entry(u, online=u.pk in online) for u in members],
        "lastSeq": session.last_seq,
        "missed": [],
        "hasMore": False,
        "activeStreams": [],
    }
    room = frame_max_bytes() - ENVELOPE_ALLOWANCE - encoded_size(snapshot)
    streams = []
    for stream in active_streams(session.pk):
        fitted = fit_content(stream, room=room - event_max_bytes())
        room -= encoded_size(fitted) + 1
        streams.append(fitted)
    snapshot["activeStreams"] = streams
    if last_seq is not None:
        snapshot["missed"], snapshot["hasMore"] = _missed_that_fit(
            session_id=session.pk, last_seq=last_seq, room=room
        )
    return snapshot


def _missed_that_fit(*, session_id, last_seq: int, room: int) -> tuple[list[dict], bool]:
    """The events after ``last_seq``, in order, at most ``REPLAY_LIMIT`` and at most
    ``room`` bytes of them encoded; and whether more remain."""
    events, has_more = events_after(session_id=session_id, last_seq=last_seq, limit=REPLAY_LIMIT)
    missed = []
    for frame in events:
        # Each one a separator more in the list.
        room -= encoded_size(frame) + 1
        if room < 0 and missed:
            return missed, True
        missed.append(frame)
    return missed, has_more
