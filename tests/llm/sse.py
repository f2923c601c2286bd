"""Helpers for the SSE doors' tests: parse server-sent events (whole or as they arrive) and
call the real ASGI application, with or without hanging up mid-response."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
from rest_framework_simplejwt.tokens import AccessToken

WITHIN_S = 30


class SseParser:
    """Feed it text as it arrives; it returns the events completed so far, in order, each as
    ``{"event", "id", "data"}`` (``data`` decoded from JSON). Comment lines are skipped."""

    def __init__(self) -> None:
        self.buffer = ""
        self.comments = 0

    def feed(self, text: str) -> list[dict]:
        self.buffer += text.replace("\r\n", "\n")
        events = []
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            event = self._parse(block)
            if event is not None:
                events.append(event)
        return events

    def _parse(self, block: str) -> dict | None:
        event = {"event": "message", "id": None, "data": None}
        data_lines = []
        for line in block.split("\n"):
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data_lines.append(value)
            elif name == "event":
                event["event"] = value
            elif name == "id":
                event["id"] = value
        if not data_lines:
            return None
        event["data"] = json.loads("\n".join(data_lines))
        return event


def parse_sse(raw: bytes | str) -> list[dict]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    return SseParser().feed(text)


def bearer(user) -> dict:
    return {"Authorization": f"Bearer {AccessToken.for_user(user)}"}


def asgi_client() -> httpx.AsyncClient:
    """An HTTP client for the real ASGI application (the whole response is collected)."""
    from chatproject.asgi import application

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://testserver"
    )


async def hang_up_after(
    path: str,
    body: bytes,
    headers: dict,
    *,
    enough: Callable[[list[dict]], bool],
    within: float = WITHIN_S,
) -> list[dict]:
    """Call the ASGI application as a server would, and send ``http.disconnect`` (the client
    hung up) as soon as the events received make ``enough`` true. Returns those events."""
    from chatproject.asgi import application

    parser = SseParser()
    events: list[dict] = []
    gone = asyncio.Event()
    body_sent = False

    async def receive():
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body":
            events.extend(parser.feed(message.get("body", b"").decode()))
            if enough(events):
                gone.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(application(scope, receive, send), within)
    return events
