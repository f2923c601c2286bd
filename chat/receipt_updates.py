"""``receipts:update`` frames: a session's watermark moves, gathered per worker and sent at
most once per ``RECEIPT_BROADCAST_INTERVAL_MS``.

A frame per receipt to every member grows with the square of a room: one message read by
100 members was about 10,000 frames, and as many again queued for those away. Here a
session's moves go out at once if its last frame is older than the interval, else when the
interval ends, as one frame listing each reader that moved since the last one, with their
watermarks now. The frame goes to the sockets that joined the session (the reader's own
other sockets too), is not numbered and is never queued for members who are away: a client
that missed one reads the watermarks again from ``session:join``'s ``members``.

One ``ReceiptUpdates`` per event loop; everything here runs on that loop.
"""

from __future__ import annotations

import asyncio
import uuid

from django.conf import settings

from . import event_types
from .events import broadcast_now, encode, group_for_session
from .per_loop import PerLoop
from .services.receipts import Reader

# Readers per frame: an entry is at most about 60 bytes encoded, so a frame stays far below
# the frame cap however large the room (``chat.frame_size``); more go out as more frames.
READERS_PER_FRAME = 1000


class ReceiptUpdates:
    """The readers that moved per session, and the sessions inside their interval."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: dict[uuid.UUID, dict[int, Reader]] = {}
        # Sessions that sent a frame less than an interval ago: the timer that ends it.
        self.cooling: dict[uuid.UUID, asyncio.TimerHandle] = {}

    def add(self, moved: dict[uuid.UUID, dict[int, Reader]]) -> None:
        """Called with the readers a committed write moved, per session."""
        for session_id, readers in moved.items():
            pending = self.pending.setdefault(session_id, {})
            for user_id, reader in readers.items():
                known = pending.get(user_id, reader)
                pending[user_id] = Reader(
                    max(known.delivered_seq, reader.delivered_seq),
                    max(known.seen_seq, reader.seen_seq),
                )
            if session_id not in self.cooling:
                self._send(session_id)

    def _send(self, session_id: uuid.UUID) -> None:
        readers = self.pending.pop(session_id, None)
        if not readers:
            self.cooling.pop(session_id, None)
            return
        interval = settings.RECEIPT_BROADCAST_INTERVAL_MS / 1000
        self.cooling[session_id] = self.loop.call_later(interval, self._send, session_id)
        entries = [
            {"userId": user_id, "deliveredSeq": r.delivered_seq, "seenSeq": r.seen_seq}
            for user_id, r in readers.items()
        ]
        for start in range(0, len(entries), READERS_PER_FRAME):
            data = event_types.receipts_update(
                session_id=session_id, readers=entries[start : start + READERS_PER_FRAME]
            )
            broadcast_now(
                group_for_session(session_id),
                encode({"event": event_types.RECEIPTS_UPDATE, "data": data}),
            )


# The running loop's ``ReceiptUpdates``.
receipt_updates = PerLoop(lambda: ReceiptUpdates(asyncio.get_running_loop()))
