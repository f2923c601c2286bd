"""What a client receives when it joins a session: the session, its members and their
presence, and the durable events it missed since ``lastSeq`` (CONTRACT ``session:join``).

The reply is one frame, so it takes no more than the frame cap (``chat.frame_size``): the
snapshot first, then each running answer's text so far where it leaves room for one more
event (else ``contentOmitted``), then as many missed events as fit, at most
``REPLAY_LIMIT``. ``hasMore`` says there are more: the client joins again from the last seq
it got. Every event fits in half the cap, so each page brings at least one.
"""

from __future__ import annotations

from chatproject.reused_serializer import ReusedSerializer

from .extensions import active_streams
from .frame_size import (
    ENVELOPE_ALLOWANCE,
    encoded_size,
    event_max_bytes,
    fit_content,
    frame_max_bytes,
)
from .member_rows import member_rows, render_member, render_presence
from .selectors import events_after, session_get_for_member
from .serializers import SessionHeadSerializer
from .state import get_state

render_session_head = ReusedSerializer(SessionHeadSerializer)

REPLAY_LIMIT = 500


def session_join_snapshot(*, user, session_id, last_seq: int | None) -> dict:
    """Read after the connection is in the session's group, so any event committed from
    here on arrives live too: the client drops duplicates by seq, and nothing falls between."""
    session = session_get_for_member(user=user, session_id=session_id)
    rows = member_rows(session.pk)
    online = get_state().online(row.user_id for row in rows)
    members = [render_member(row) for row in rows]
    snapshot = {
        "session": {**render_session_head(session), "members": members},
        "members": members,
        "presence": [render_presence(row, online=row.user_id in online) for row in rows],
        "lastSeq": session.last_seq,
        "missed": [],
        "hasMore": False,
        "activeStreams": [],
    }
    _fit_members(snapshot, user_id=user.pk, room=snapshot_max_bytes())
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


def snapshot_max_bytes() -> int:
    """What the snapshot may take of the reply: the rest is room for one event of any size."""
    return frame_max_bytes() - ENVELOPE_ALLOWANCE - event_max_bytes()


def _fit_members(snapshot: dict, *, user_id: int, room: int) -> None:
    """In a room too large for its members to fit in the reply beside one event (about a
    thousand members), keep those that fit, the joining user and the members online first,
    and say ``membersOmitted``: ``GET /api/chat/sessions/:id`` and its ``/presence`` list them
    all. The session's own ``members`` is the same list, so it is cut alike."""
    if encoded_size(snapshot) <= room:
        return
    online = {entry["user"]["id"] for entry in snapshot["presence"] if entry["status"] == "online"}
    by_id = {entry["user"]["id"]: entry for entry in snapshot["presence"]}
    first = sorted(snapshot["members"], key=lambda m: (m["id"] != user_id, m["id"] not in online))
    fixed = {**snapshot, "session": {**snapshot["session"], "members": []}, "members": [],
             "presence": [], "membersOmitted": True}  # fmt: skip
    room -= encoded_size(fixed)
    kept = []
    for member in first:
        # The member twice (the session's list and the reply's) and its presence entry,
        # each with a separator.
        room -= 2 * (encoded_size(member) + 1) + encoded_size(by_id[member["id"]]) + 1
        if room < 0:
            break
        kept.append(member)
    snapshot["session"] = {**snapshot["session"], "members": kept}
    snapshot["members"] = kept
    snapshot["presence"] = [by_id[m["id"]] for m in kept]
    snapshot["membersOmitted"] = True


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
