"""Server-sent events on the wire: how one event is framed, the response that streams them,
and the JSON error a request gets when it is refused before any stream starts.

The response streams an async generator, never a sync iterator: under ASGI Django consumes a
sync iterator whole before sending anything (TRAPS), so the events would arrive all at once.
It also closes that generator itself when the response is abandoned: Django's ASGI handler
closes only the wrapper around it, and the generator's ``finally`` is what cancels the
request to Ollama when a client hangs up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from django.http import StreamingHttpResponse

# A comment line: ignored by clients, keeps proxies from timing an idle stream out.
KEEPALIVE = b": keepalive\n\n"


def sse_event(event: str, data: Any, *, event_id: int | None = None) -> bytes:
    """One event. The JSON has no raw line breaks (orjson escapes them), so it fits one
    ``data:`` line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


class EventStreamResponse(StreamingHttpResponse):
    """``text/event-stream`` from an async generator of encoded events."""

    def __init__(self, events: AsyncIterator[bytes], *, status: int = 200) -> None:
        super().__init__(events, content_type="text/event-stream; charset=utf-8", status=status)
        self["Cache-Control"] = "no-cache"
        # nginx would otherwise buffer the stream and deliver it in lumps (TRAPS).
        self["X-Accel-Buffering"] = "no"
        self._events = events

    async def __aiter__(self):
        try:
            async for part in super().__aiter__():
                yield part
        finally:
            await self._events.aclose()
