"""``GET /api/chat/sessions/:id/export?format=json|md``: a session's whole history as a
download, streamed.

A DRF view checks the request (credentials, membership, format, throttle), so a refusal is
the API's one JSON error; the body is then an async generator that reads the transcript a
page at a time (``chat.export_pages``) and writes each page as it comes
(``chat.export_formats``). Under ASGI Django sends an async generator's parts as they are
made; a sync iterator it would read whole first (TRAPS), and an export of a large session
would sit in the server's memory. Each page is read and encoded on the database thread, so
the event loop only passes bytes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from channels.db import database_sync_to_async
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from drf_spectacular.utils import OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from chatproject.validation import validated

from .export_formats import WRITERS, ExportContext, ExportWriter, export_filename
from .export_pages import EXPORT_PAGE_SIZE, ExportCursor, export_head, export_page
from .extensions import agent_choices
from .selectors import session_get_for_member
from .serializers import ExportQuery
from .throttles import EventThrottle


class _JsonErrors(BaseContentNegotiation):
    """Any ``Accept`` gets the export; a refusal is JSON. DRF's default negotiation would
    also read ``?format=`` as a renderer's name and answer 404 for ``md``."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _write_page(writer: ExportWriter, session_id, after: ExportCursor | None, size: int):
    """One page read and encoded: its bytes and the cursor of the next (None: the end)."""
    page = export_page(session_id=session_id, after=after, size=size)
    return writer.page(page), page.next


async def export_stream(
    writer: ExportWriter, *, session_id, head: bytes, size: int = EXPORT_PAGE_SIZE
) -> AsyncIterator[bytes]:
    """The export's bytes: ``head``, each page as it is read, the end."""
    yield head
    cursor = None
    while True:
        chunk, cursor = await database_sync_to_async(_write_page)(writer, session_id, cursor, size)
        if chunk:
            yield chunk
        if cursor is None:
            break
    yield writer.tail()


class SessionExportApi(APIView):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _JsonErrors
    throttle_classes = [EventThrottle]
    throttle_events = {"GET": "session:export"}
    # Messages read, encoded and sent at a time: what the export holds in memory.
    page_size = EXPORT_PAGE_SIZE

    @extend_schema(
        parameters=[ExportQuery],
        responses={
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="{session: {id, title, createdBy, agentId, createdAt, members}, "
                "exportedAt, messages: [{id, seq, parentMessageId, author, role, agentId, "
                "agentName, model, content, tokens, isEdited, editedAt, isDeleted, deletedAt, "
                "createdAt, attachments: [{id, fileName, url, mimeType, fileSize}]}]}",
            ),
            (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR),
        },
        description="The session's whole history as a download (Content-Disposition: "
        "attachment), streamed: top-level messages by seq, each followed by its thread's "
        "replies; deleted messages as tombstones without text; attachments as links. "
        "Members only.",
    )
    def get(self, request, session_id):
        query = validated(ExportQuery, request.query_params)
        session = session_get_for_member(user=request.user, session_id=session_id)
        now = timezone.now()
        context = ExportContext(
            base_url=request.build_absolute_uri("/").rstrip("/"),
            agent_names=dict(agent_choices()),
        )
        writer = WRITERS[query["format"]](context)
        head = writer.head(export_head(session=session), now)
        response = StreamingHttpResponse(
            export_stream(writer, session_id=session.pk, head=head, size=self.page_size),
            content_type=writer.content_type,
        )
        filename = export_filename(title=session.title, on=now.date(), fmt=writer.extension)
        response["Content-Disposition"] = content_disposition_header(True, filename)
        response["X-Content-Type-Options"] = "nosniff"
        # No ``X-Accel-Buffering: no`` (as the event streams send): a proxy that buffers a
        # download to disk reads it at the server's pace, so a slow client never makes the
        # server hold what it has not sent (daphne writes without waiting for the socket).
        response["Cache-Control"] = "private, no-store"
        return response
