"""Ending the streams whose worker died.

A running stream holds a slot in the shared state (``llm.stream_state``) that its worker
keeps alive, and its row says ``pending`` until the worker saves how it ended. A worker
killed mid-answer (SIGKILL, out of memory) saves nothing: the row would say it runs forever,
the answer would stay an empty message and the room would wait for a final frame that never
comes. Once the slot has expired no worker can be running the stream, so the sweeper ends it
as any failure ends: the text so far is kept (from the stream's live record, which outlives
its slot by ``llm.stream_state.STREAM_RECORD_LINGER``), the answer and the row are saved as
failed (``message:edited``), and the room gets ``stream:error`` (``INTERNAL``, as for an
answer interrupted by its worker shutting down).

It runs where it is cheap and certain to happen: reading a stream's status or metrics, a
``session:join`` (``activeStreams``), following a stream over SSE, and
``manage.py sweep_streams`` for cron.
"""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from chat.events import broadcast_on_commit, group_for_session
from chat.models import Message

from .. import event_types
from ..models import Stream
from ..stream_events import StreamError
from ..stream_state import get_stream_state
from .stream_records import StreamOutcome, stream_outcome_save

logger = logging.getLogger(__name__)

ORPHAN_CODE = "INTERNAL"
ORPHAN_MESSAGE = "The answer was interrupted: the worker writing it stopped."
RUNNING = (Stream.Status.PENDING, Stream.Status.STREAMING)


def stream_sweep(*, stream: Stream) -> Stream:
    """``stream`` as it stands: failed now if its row says it runs but no worker holds its
    slot any more. One that has ended or still runs comes back as it is, and so does one
    the shared state can't tell about (an outage must not fail answers that may be fine)."""
    if stream.status in Stream.FINAL:
        return stream
    state = get_stream_state()
    try:
        if state.stream_running(str(stream.pk)):
            return stream
        record = state.stream_snapshot(str(stream.pk))
    except Exception:
        logger.warning("can't tell whether stream %s runs; not sweeping it", stream.pk,
                       exc_info=True)  # fmt: skip
        return stream
    return _fail(stream, record) or stream


def streams_sweep(*, session_id=None) -> list[Stream]:
    """Sweep every stream whose row says it runs (in one session, or everywhere): each as it
    stands afterwards, so a caller tells the ones really running from the ones now ended."""
    rows = Stream.objects.filter(status__in=RUNNING)
    if session_id is not None:
        rows = rows.filter(session_id=session_id)
    return [stream_sweep(stream=row) for row in rows]


def _fail(stream: Stream, record: dict | None) -> Stream | None:
    """Save the stream as failed, unless its worker ended it meanwhile; the row as saved,
    or None if the session is gone."""
    with transaction.atomic():
        # The answer's message first, then the row: the order in which a worker ending its
        # stream locks them (``stream_finish``), so the two can't deadlock.
        message = Message.objects.select_for_update().filter(pk=stream.message_id).first()
        row = Stream.objects.filter(pk=stream.pk).first()
        if message is None or row is None:
            return None
        if row.status in Stream.FINAL:
            return row
        outcome = _outcome(row, message, record)
        stream_outcome_save(
            stream_id=row.pk,
            message_id=row.message_id,
            model=row.model,
            outcome=outcome,
            version=row.version,
        )
        ids = {"stream_id": row.pk, "session_id": row.session_id, "message_id": row.message_id}
        broadcast_on_commit(
            group_for_session(row.session_id),
            {
                "event": event_types.STREAM_ERROR,
                "data": event_types.stream_error(**ids, code=ORPHAN_CODE, message=ORPHAN_MESSAGE),
            },
        )
    logger.warning("stream %s lost its worker: failed, %d characters of it kept", row.pk,
                   len(outcome.ending.content))  # fmt: skip
    row.refresh_from_db()
    return row


def _outcome(row: Stream, message: Message, record: dict | None) -> StreamOutcome:
    """A failure keeping what the live record holds (nothing beyond the saved message if
    the record is gone too)."""
    record = record or {}
    deltas = record.get("deltas", [])
    # Without a record, a first answer keeps what its message has; a later version (a
    # regenerate) never wrote there, so it has nothing.
    content = "".join(deltas) if record else (message.content if row.version == 1 else "")
    first_token = record.get("firstTokenAt")
    ending = StreamError(
        content=content,
        tokens=record.get("tokens", row.tokens_generated),
        prompt_tokens=0,
        model=record.get("model") or row.model,
        duration_ms=round((timezone.now() - row.started_at).total_seconds() * 1000),
        latency_ms=None,
        errors=1,
        code=ORPHAN_CODE,
        message=ORPHAN_MESSAGE,
    )
    return StreamOutcome(
        status=Stream.Status.FAILED,
        ending=ending,
        finish_reason="error",
        error_code=ORPHAN_CODE,
        error_message=ORPHAN_MESSAGE,
        first_token_at=datetime.fromtimestamp(first_token, tz=UTC) if first_token else None,
        chunks_sent=len(deltas),
        chunk_ends=list(itertools.accumulate(len(delta) for delta in deltas)),
        bytes_sent=record.get("bytes", 0),
    )
