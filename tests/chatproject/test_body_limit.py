"""The ASGI body guard: oversized HTTP bodies are refused before Django reads them."""

import orjson
import pytest

from chatproject.body_limit import BodyLimitGuard


class RecordingApp:
    """An ASGI app that reads the whole body, as Django's handler does, and answers 200."""

    def __init__(self) -> None:
        self.read = b""
        self.saw_disconnect = False

    async def __call__(self, scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.saw_disconnect = True
                return
            self.read += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app, headers, chunks):
    sent = []
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
               for i, c in enumerate(chunks)]  # fmt: skip

    async def receive():
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    await BodyLimitGuard(app)(scope, receive, send)
    return sent


@pytest.fixture
def small_limit(settings):
    settings.ATTACHMENT_MAX_BYTES = 10


async def test_a_declared_length_over_the_limit_gets_413_without_reading(small_limit):
    app = RecordingApp()
    sent = await call(app, [(b"content-length", b"999999")], [b"x" * 10])
    assert sent[0]["status"] == 413 and app.read == b""


async def test_the_413_says_the_limit_in_words(settings):
    settings.ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
    sent = await call(RecordingApp(), [(b"content-length", b"99999999")], [b""])
    body = orjson.loads(sent[1]["body"])
    words = "The request body is too large: attachments can be at most 10.0\xa0MB."
    assert body["message"] == words
    assert body["details"] == {"maxBytes": 10 * 1024 * 1024}


async def test_an_undeclared_body_is_cut_off_once_past_the_limit(small_limit):
    app = RecordingApp()
    chunk = b"x" * 40 * 1024
    sent = await call(app, [], [chunk, chunk, chunk])
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [413]
    assert app.saw_disconnect and len(app.read) < 3 * len(chunk)


async def test_a_body_within_the_limit_passes_through(small_limit):
    app = RecordingApp()
    sent = await call(app, [(b"content-length", b"5")], [b"hello"])
    assert sent[0]["status"] == 200 and app.read == b"hello"
