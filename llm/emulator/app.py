"""A dependency-free ASGI application that speaks Ollama's HTTP API, for tests and offline demos.

``OllamaEmulator`` answers the endpoints the project's clients use, in the shapes
ollama-python and langchain-ollama parse:

- ``POST /api/chat`` and ``POST /api/generate``: NDJSON streams (``"stream"`` absent or true)
  or one JSON object (``"stream": false``), with tool calls, ``options.num_predict``
  (done_reason ``"length"``) and ``options.stop``;
- ``POST /api/embed``: deterministic vectors (``script.embed_vector``), so tests can say
  which passages a question retrieves;
- ``GET /api/tags``, ``POST /api/show``, ``GET /api/ps``, ``GET /api/version``, ``GET /``;
- an unknown model gets Ollama's 404 ``{"error": "model \\"x\\" not found, try pulling it
  first"}``.

What it says is a ``Script`` (see ``script.py``), settable in-process (``configure``) or
over ``POST /_emulator/script``; everything it saw is in ``log`` / ``GET /_emulator/log``:
``request`` entries, then ``complete``, ``failure`` or ``disconnect`` (a client that hung up
mid-response: generation stops at once, as Ollama's does).

Control endpoints: ``GET|POST /_emulator/script`` (POST merges the given fields),
``GET|DELETE /_emulator/log``, ``POST /_emulator/reset``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .script import (
    DEFAULT_503_ERROR,
    DEFAULT_LINE_ERROR,
    EMBED_DIMENSIONS,
    Script,
    count_prompt_tokens,
    embed_vector,
    plan_tokens,
)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

VERSION = "0.12.6"
NDJSON = b"application/x-ndjson"
JSON = b"application/json; charset=utf-8"
TEXT = b"text/plain; charset=utf-8"
_STALL_POLL_S = 0.05
LOG_LIMIT = 10_000


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _full_name(name: str) -> str:
    # Ollama treats "llama3.2" and "llama3.2:latest" as the same model.
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _model_entry(name: str, family: str | None = None) -> dict[str, Any]:
    full = _full_name(name)
    family = family or full.split(":", 1)[0].rstrip("0123456789.") or "llama"
    digest = hashlib.sha256(full.encode()).hexdigest()
    return {
        "name": full,
        "model": full,
        "modified_at": "2025-01-01T00:00:00Z",
        "size": 2019393189,
        "digest": digest,
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        },
    }


class _ClientGone(Exception):
    """The client hung up (or the server is closing) while a response was being made."""


class OllamaEmulator:
    """The ASGI callable. Thread-safe: tests configure and read it from their own thread
    while uvicorn serves it from another."""

    def __init__(self, script: Script | None = None) -> None:
        self.cond = threading.Condition()
        # Copies, because a Script's fields can be mutated in place and reset() must still
        # return to the starting point.
        self._initial = copy.deepcopy(script or Script())
        self._script = copy.deepcopy(self._initial)
        self._log: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.closing = threading.Event()
        # Bumped by reset(): responses begun before it no longer write to the log, so a
        # stream left over from one test cannot add a "disconnect" to the next test's log.
        self._epoch = 0
        self.active_requests = 0

    # -- state shared with tests -------------------------------------------------------

    @property
    def script(self) -> Script:
        with self.cond:
            return self._script

    @script.setter
    def script(self, script: Script) -> None:
        with self.cond:
            self._script = script

    def configure(self, **changes: Any) -> Script:
        """Merge ``changes`` into the script; unknown or invalid fields raise ValueError."""
        with self.cond:
            self._script = self._script.updated(**changes)
            return self._script

    def reset(self) -> None:
        """The script it started with, an empty log: a fresh server for the next test."""
        with self.cond:
            self._script = copy.deepcopy(self._initial)
            self._log.clear()
            self._epoch += 1

    @property
    def log(self) -> list[dict[str, Any]]:
        with self.cond:
            return [dict(entry) for entry in self._log]

    def clear_log(self) -> None:
        with self.cond:
            self._log.clear()

    def events(self, event: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """Log entries of one kind whose fields equal ``match``."""
        return [
            entry
            for entry in self.log
            if (event is None or entry["event"] == event)
            and all(entry.get(key) == value for key, value in match.items())
        ]

    def wait_for(self, event: str, within: float = 5.0, **match: Any) -> dict[str, Any]:
        """Block until a matching log entry exists and return it (TimeoutError if none).
        For synchronous code only: it blocks the calling thread."""
        deadline = time.monotonic() + within
        with self.cond:
            while True:
                for entry in self._log:
                    if entry["event"] == event and all(
                        entry.get(key) == value for key, value in match.items()
                    ):
                        return dict(entry)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {event!r} entry matching {match} in {within} s")
                self.cond.wait(remaining)

    async def await_event(self, event: str, within: float = 5.0, **match: Any) -> dict[str, Any]:
        """``wait_for`` for async code: polls without blocking the caller's event loop, which
        may be the one that still has to close the connection being waited on."""
        deadline = time.monotonic() + within
        while True:
            found = self.events(event, **match)
            if found:
                return found[0]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {event!r} entry matching {match} in {within} s")
            await asyncio.sleep(0.01)

    @property
    def active(self) -> int:
        """Chat/generate responses still being made (a stalled one counts until it ends)."""
        with self.cond:
            return self.active_requests

    def close(self) -> None:
        """Make stalled and delayed responses give up, so the server can shut down."""
        self.closing.set()

    def record(self, event: str, epoch: int | None = None, **fields: Any) -> dict[str, Any]:
        entry = {"event": event, "at": time.time(), **fields}
        with self.cond:
            if epoch is not None and epoch != self._epoch:
                return entry
            self._log.append(entry)
            # A demo server may run for days: keep the recent past only.
            del self._log[:-LOG_LIMIT]
            self.cond.notify_all()
        return entry

    # -- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.closing.clear()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.closing.set()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        routes: dict[str, dict[str, Any]] = {
            "/": {"GET": self._root, "HEAD": self._root},
            "/api/version": {"GET": self._version},
            "/api/tags": {"GET": self._tags, "HEAD": self._tags},
            "/api/ps": {"GET": self._ps},
            "/api/show": {"POST": self._show},
            "/api/chat": {"POST": self._chat},
            "/api/generate": {"POST": self._generate},
            "/api/embed": {"POST": self._embed},
            "/_emulator/script": {"GET": self._get_script, "POST": self._post_script},
            "/_emulator/log": {"GET": self._get_log, "DELETE": self._delete_log},
            "/_emulator/reset": {"POST": self._post_reset},
        }
        methods = routes.get(path)
        if methods is None:
            await _send_body(send, 404, b"404 page not found", TEXT)
            return
        handler = methods.get(method)
        if handler is None:
            await _send_body(send, 405, b"405 method not allowed", TEXT)
            return
        try:
            raw = await _read_body(receive)
        except _ClientGone:
            return
        body: Any = {}
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                await _send_json(send, 400, {"error": "invalid character in request body"})
                return
        if not isinstance(body, dict):
            await _send_json(send, 400, {"error": "request body must be a JSON object"})
            return
        await handler(body, receive, send, method=method)

    # -- simple endpoints ----------------------------------------------------------------

    async def _root(self, body, receive, send, method):
        await _send_body(send, 200, b"Ollama is running", TEXT, head=method == "HEAD")

    async def _version(self, body, receive, send, method):
        await _send_json(send, 200, {"version": VERSION})

    async def _tags(self, body, receive, send, method):
        # One entry per model, as Ollama lists them: "llama3.2" and "llama3.2:latest" are one.
        script = self.script
        names = dict.fromkeys(_full_name(name) for name in script.models)
        models = [_model_entry(name) for name in names]
        embed_names = dict.fromkeys(_full_name(name) for name in script.embed_models)
        models += [_model_entry(name, family="nomic-bert") for name in embed_names]
        await _send_json(send, 200, {"models": models}, head=method == "HEAD")

    async def _ps(self, body, receive, send, method):
        await _send_json(send, 200, {"models": []})

    async def _show(self, body, receive, send, method):
        name = body.get("model") or body.get("name")
        if not name:
            await _send_json(send, 400, {"error": "model is required"})
            return
        if not self._knows(name, self.script):
            await _send_json(send, 404, {"error": f"model '{name}' not found"})
            return
        entry = _model_entry(name)
        family = entry["details"]["family"]
        await _send_json(
            send,
            200,
            {
                "license": "Emulated model: no licence terms.",
                "modelfile": f"# Modelfile generated by the Ollama emulator\nFROM {name}\n",
                "parameters": 'stop                           "<|eot_id|>"',
                "template": "{{ .Prompt }}",
                "details": entry["details"],
                "model_info": {
                    "general.architecture": family,
                    "general.parameter_count": 3212749888,
                    f"{family}.context_length": 131072,
                },
                "capabilities": ["completion", "tools"],
                "modified_at": entry["modified_at"],
            },
        )

    async def _get_script(self, body, receive, send, method):
        await _send_json(send, 200, self.script.to_json())

    async def _post_script(self, body, receive, send, method):
        try:
            script = self.configure(**body)
        except (TypeError, ValueError) as exc:
            await _send_json(send, 400, {"error": str(exc)})
            return
        await _send_json(send, 200, script.to_json())

    async def _get_log(self, body, receive, send, method):
        await _send_json(send, 200, {"log": self.log})

    async def _delete_log(self, body, receive, send, method):
        self.clear_log()
        await _send_json(send, 200, {"log": []})

    async def _post_reset(self, body, receive, send, method):
        self.reset()
        await _send_json(send, 200, self.script.to_json())

    # -- embeddings ----------------------------------------------------------------------

    async def _embed(self, body, receive, send, method):
        """Ollama's ``POST /api/embed``: ``{model, input: str | [str], truncate?,
        dimensions?}`` -> ``{model, embeddings, total_duration, load_duration,
        prompt_eval_count}``, with the deterministic vectors of ``embed_vector``. Logged as
        ``embed`` entries (not ``request``: those are the chat requests)."""
        started = time.monotonic_ns()
        with self.cond:
            script = self._script
        model, given = body.get("model"), body.get("input")
        texts = [given] if isinstance(given, str) else given
        self.record("embed", model=model, input=texts, dimensions=body.get("dimensions"))
        if await _refused(send, model, script.embed_models, script):
            return
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            await _send_json(send, 400, {"error": "input must be a string or a list of them"})
            return
        dimensions = body.get("dimensions") or EMBED_DIMENSIONS
        if not isinstance(dimensions, int) or dimensions <= 0:
            await _send_json(send, 400, {"error": "dimensions must be a positive integer"})
            return
        if script.embed_delay_ms:
            await asyncio.sleep(script.embed_delay_ms / 1000)
        embeddings = [embed_vector(text, dimensions) for text in texts]
        await _send_json(
            send,
            200,
            {
                "model": model,
                "embeddings": embeddings,
                "total_duration": max(time.monotonic_ns() - started, 1000),
                "load_duration": 1000,
                "prompt_eval_count": sum(len(text.split()) for text in texts),
            },
        )

    # -- generation ----------------------------------------------------------------------

    @staticmethod
    def _knows(name: str, script: Script) -> bool:
        return _full_name(name) in {_full_name(model) for model in script.models}

    async def _chat(self, body, receive, send, method):
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            await _send_json(send, 400, {"error": "messages must be a list of objects"})
            return
        await self._complete(body, messages, receive, send, path="/api/chat")

    async def _generate(self, body, receive, send, method):
        messages = []
        if body.get("system"):
            messages.append({"role": "system", "content": str(body["system"])})
        messages.append({"role": "user", "content": str(body.get("prompt") or "")})
        await self._complete(body, messages, receive, send, path="/api/generate")

    async def _complete(
        self,
        body: dict[str, Any],
        messages: Sequence[Mapping[str, Any]],
        receive: Receive,
        send: Send,
        path: str,
    ) -> None:
        with self.cond:  # one snapshot per request: later changes don't leak into it
            script, epoch = self._script, self._epoch
        request_id = next(self._ids)
        model = body.get("model")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            options = {}  # Ollama would reject it; the emulator just ignores it (and logs it)
        stream = body.get("stream") is not False  # Ollama streams unless told not to
        self.record(
            "request",
            id=request_id,
            path=path,
            model=model,
            stream=stream,
            messages=list(body.get("messages") or []),
            prompt=body.get("prompt"),
            options=options,
            tools=list(body.get("tools") or []),
            format=body.get("format"),
            keep_alive=body.get("keep_alive"),
        )
        refused = await _refused(send, model, script.models, script)
        if refused:
            self.record("failure", id=request_id, mode=refused[0], status=refused[1])
            return

        tool_calls = []
        last_role = messages[-1].get("role") if messages else None
        if body.get("tools") and script.tool_calls and last_role != "tool":
            tool_calls = [call.to_wire(i) for i, call in enumerate(script.tool_calls)]
            tokens: list[str] = []
        else:
            tokens = plan_tokens(script, messages)
        tokens, done_reason = _apply_limits(tokens, options)

        run = _Run(
            emulator=self,
            script=script,
            request_id=request_id,
            epoch=epoch,
            model=model,
            chat=path == "/api/chat",
            prompt_tokens=(
                script.prompt_eval_count
                if script.prompt_eval_count is not None
                else count_prompt_tokens(messages)
            ),
            receive=receive,
            send=send,
        )
        await run.execute(tokens, tool_calls, done_reason, stream)


def _apply_limits(tokens: list[str], options: Mapping[str, Any]) -> tuple[list[str], str]:
    """Cut the planned tokens at ``options.stop`` and ``options.num_predict`` like Ollama."""
    done_reason = "stop"
    stops = options.get("stop") or []
    if isinstance(stops, str):
        stops = [stops]
    if stops:
        text = ""
        for index, token in enumerate(tokens):
            candidate = text + token
            hits = [candidate.find(s, max(0, len(text) - len(s))) for s in stops if s]
            hits = [hit for hit in hits if hit >= 0]
            if hits:
                kept = candidate[len(text) : min(hits)]
                tokens = tokens[:index] + ([kept] if kept else [])
                break
            text = candidate
    num_predict = options.get("num_predict")
    # -1 (infinite) and -2 (fill the context) put no limit on an answer of known length.
    if isinstance(num_predict, int) and 0 < num_predict < len(tokens):
        tokens = tokens[:num_predict]
        done_reason = "length"
    return tokens, done_reason


class _Run:
    """One /api/chat or /api/generate response, watching for the client hanging up."""

    def __init__(
        self, *, emulator, script, request_id, epoch, model, chat, prompt_tokens, receive, send
    ):
        self.emulator: OllamaEmulator = emulator
        self.epoch: int = epoch
        self.script: Script = script
        self.request_id: int = request_id
        self.model: str = model
        self.chat: bool = chat
        self.prompt_tokens: int = prompt_tokens
        self.receive = receive
        self.send = send
        self.sent = 0
        self.text = ""
        self.headers_sent = False
        self.started_ns = time.monotonic_ns()
        self.first_token_ns: int | None = None
        self.disconnected = asyncio.Event()

    async def execute(self, tokens, tool_calls, done_reason, stream) -> None:
        watcher = asyncio.create_task(self._watch_disconnect())
        with self.emulator.cond:
            self.emulator.active_requests += 1
        try:
            if stream:
                await self._stream(tokens, tool_calls, done_reason)
            else:
                await self._whole(tokens, tool_calls, done_reason)
        except _ClientGone:
            if self.disconnected.is_set():
                self.record("disconnect", id=self.request_id, tokens_sent=self.sent)
            else:
                # The server is shutting down: leave the response unfinished (connection cut).
                self.record("failure", id=self.request_id, mode="shutdown", tokens_sent=self.sent)
        finally:
            with self.emulator.cond:
                self.emulator.active_requests -= 1
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_disconnect(self) -> None:
        # The body is read already, so the server's next message is http.disconnect.
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                return

    async def _pause(self, ms: float) -> None:
        """Sleep ``ms`` (at least yield once), raising _ClientGone the moment the client leaves."""
        deadline = time.monotonic() + ms / 1000
        while True:
            if self.disconnected.is_set() or self.emulator.closing.is_set():
                raise _ClientGone
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await asyncio.sleep(0)
                if self.disconnected.is_set():
                    raise _ClientGone
                return
            with contextlib.suppress(TimeoutError):
                # Bounded so that a server shutdown (a threading flag) is noticed too.
                await asyncio.wait_for(self.disconnected.wait(), min(remaining, 0.25))

    def _failing_now(self, total: int) -> bool:
        failure = self.script.failure
        if failure not in ("error_line", "cut", "stall", "no_done"):
            return False
        limit = total if self.script.fail_after is None else min(self.script.fail_after, total)
        return self.sent >= limit

    def _frame(self, delta: str, tool_calls=None, done=False) -> dict[str, Any]:
        frame: dict[str, Any] = {"model": self.model, "created_at": _now_iso()}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": delta}
            if tool_calls:
                message["tool_calls"] = tool_calls
            frame["message"] = message
        else:
            frame["response"] = delta
        frame["done"] = done
        return frame

    def _final(self, done_reason: str, eval_count: int, text: str = "", tool_calls=None):
        end_ns = time.monotonic_ns()
        first = self.first_token_ns or end_ns
        frame = self._frame(text, tool_calls, done=True)
        frame.update(
            done_reason=done_reason,
            # Real durations are never 0; callers divide by them (tokens per second).
            total_duration=max(end_ns - self.started_ns, 1000),
            load_duration=1000,
            prompt_eval_count=self.prompt_tokens,
            prompt_eval_duration=max(first - self.started_ns, 1000),
            eval_count=eval_count,
            eval_duration=max(end_ns - first, 1000),
        )
        if not self.chat:
            frame["context"] = []
        return frame

    async def _start(self, status: int = 200, content_type: bytes = NDJSON) -> None:
        if not self.headers_sent:
            self.headers_sent = True
            await self.send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", content_type)],
                }
            )

    async def _line(self, frame: dict[str, Any], more: bool = True) -> None:
        await self._start()
        await self.send(
            {"type": "http.response.body", "body": _dumps(frame) + b"\n", "more_body": more}
        )

    async def _stream(self, tokens, tool_calls, done_reason) -> None:
        for index, token in enumerate(tokens):
            if self._failing_now(len(tokens)):
                break
            await self._pause(self.script.token_pause_ms(index))
            if self.first_token_ns is None:
                self.first_token_ns = time.monotonic_ns()
            await self._line(self._frame(token))
            self.sent += 1
            self.text += token
        if self._failing_now(len(tokens)):
            await self._fail_stream()
            return
        eval_count = self.sent
        if tool_calls:
            await self._pause(self.script.token_pause_ms(0))
            self.first_token_ns = time.monotonic_ns()
            await self._line(self._frame("", tool_calls))
            eval_count = 10 * len(tool_calls)
        await self._pause(0)
        await self._line(self._final(done_reason, eval_count), more=False)
        self._complete(done_reason, tool_calls)

    async def _fail_stream(self) -> None:
        mode = self.script.failure
        await self._start()
        if mode == "error_line":
            await self._line({"error": self.script.error or DEFAULT_LINE_ERROR}, more=False)
        elif mode == "no_done":
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        elif mode == "stall":
            await self.send({"type": "http.response.body", "body": b"", "more_body": True})
            self.record("failure", id=self.request_id, mode=mode, tokens_sent=self.sent)
            while True:  # until the client hangs up (or the server closes): _ClientGone
                await self._pause(_STALL_POLL_S * 1000)
        # "cut" sends nothing more: returning with the response unfinished makes the server
        # drop the connection, which the client sees as an incomplete chunked body.
        self.record("failure", id=self.request_id, mode=mode, tokens_sent=self.sent)

    async def _whole(self, tokens, tool_calls, done_reason) -> None:
        failing = self.script.failure
        count = len(tokens)
        if failing in ("error_line", "cut", "stall", "no_done"):
            count = count if self.script.fail_after is None else min(self.script.fail_after, count)
        for index in range(count):
            await self._pause(self.script.token_pause_ms(index))
            if self.first_token_ns is None:
                self.first_token_ns = time.monotonic_ns()
            self.sent += 1
            self.text += tokens[index]
        if failing == "error_line":
            await _send_json(self.send, 500, {"error": self.script.error or DEFAULT_LINE_ERROR})
        elif failing == "cut":
            await self._start(content_type=JSON)
            partial = _dumps(self._frame(self.text))[:-10]
            await self.send({"type": "http.response.body", "body": partial, "more_body": True})
        elif failing == "stall":
            self.record("failure", id=self.request_id, mode=failing, tokens_sent=self.sent)
            while True:
                await self._pause(_STALL_POLL_S * 1000)
        elif failing == "no_done":
            await _send_json(self.send, 200, self._frame(self.text))
        if failing in ("error_line", "cut", "no_done"):
            self.record("failure", id=self.request_id, mode=failing, tokens_sent=self.sent)
            return
        if tool_calls:
            await self._pause(self.script.token_pause_ms(0))
            eval_count = 10 * len(tool_calls)
        else:
            eval_count = self.sent
        await self._pause(0)
        await _send_json(
            self.send, 200, self._final(done_reason, eval_count, self.text, tool_calls)
        )
        self._complete(done_reason, tool_calls)

    def record(self, event: str, **fields: Any) -> None:
        self.emulator.record(event, epoch=self.epoch, **fields)

    def _complete(self, done_reason: str, tool_calls) -> None:
        self.record(
            "complete",
            id=self.request_id,
            tokens_sent=self.sent,
            content=self.text,
            done_reason=done_reason,
            tool_calls=[call["function"] for call in tool_calls or []],
        )


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send_body(
    send: Send, status: int, body: bytes, content_type: bytes, head: bool = False
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _send_json(send: Send, status: int, obj: Any, head: bool = False) -> None:
    await _send_body(send, status, _dumps(obj), JSON, head=head)


async def _refused(
    send: Send, model: str | None, names: Sequence[str], script: Script
) -> tuple[str, int] | None:
    """Answer a request Ollama would refuse (no model, a model it hasn't, a scripted 503),
    for chat and embeddings alike; the failure mode and status, or None if it goes ahead."""
    if not model:
        await _send_json(send, 400, {"error": "model is required"})
        return "bad_request", 400
    if _full_name(model) not in {_full_name(name) for name in names}:
        error = f'model "{model}" not found, try pulling it first'
        await _send_json(send, 404, {"error": error})
        return "not_found", 404
    if script.failure == "http_503":
        await _send_json(send, 503, {"error": script.error or DEFAULT_503_ERROR})
        return "http_503", 503
    return None
