"""The stream runner: one answer from the model as an async generator of stream events
(``llm.stream_events``), independent of where the answer goes.

    async for event in run_stream(chat_model(config), messages, tools=tools, stop=stop):
        ...

Each request to Ollama is read by a task of its own (``_Round``) into an ``asyncio.Queue``;
the generator takes what is queued and coalesces it by time. The whole HTTP exchange lives
in the reading task, so cancelling that task closes the connection.

What it guarantees:

- the request to Ollama is under way before ``StreamStart`` is yielded, so whatever the
  caller does with the start (a broadcast) overlaps the model's work rather than preceding
  it;
- deltas are coalesced: a delta goes out at once if no chunk went out in the last
  ``stream_delay_ms`` (so the first one is never delayed), otherwise with the others that
  arrive within that window, at most ``stream_delay_ms`` late. A chunk goes out when the
  caller takes it: what arrived while the caller was busy with the last one (a loaded
  worker) goes out together, not as a chunk per token, up to ``delta_max_chars()`` (a chunk
  is a frame, and frames are capped: ``chat.frame_size``);
- the reading gives the event loop back at least every ``READ_SLICE_S``, and after any
  line the generator waits for with nothing buffered (so that line goes out at once): a
  response already waiting in the socket is otherwise read without giving the loop to
  anyone, which would hold the caller's work on a chunk (a broadcast: Redis round trips)
  until much of the answer had been read; and the generator wakes once per slice of lines
  at hand, not once per line;
- chunks are numbered from 0 without gaps, and their deltas add up to the final content:
  text still buffered is flushed as a chunk before any ending;
- the answer is complete at Ollama's ``done`` line: the last chunk goes out then, without
  waiting for the response to close;
- tool calls are executed, reported (``StreamTool``), fed back, and the answer goes on;
- tokens are Ollama's own counts (``eval_count`` / ``prompt_eval_count``, which LangChain
  reports as ``usage_metadata``), summed over the tool rounds; while an answer runs, each
  received piece counts as one token;
- an answer that ends without Ollama's ``done`` line is an error (``LLM_UNAVAILABLE``):
  neither ollama-python nor LangChain raises for it;
- setting ``stop`` ends the answer with ``StreamStopped``, and cancelling or closing the
  generator ends it silently; either way the HTTP request to Ollama is closed, because the
  task that reads it is cancelled (the emulator's tests prove that closes the connection).

Every answer, whichever door asked for it, counts in this worker's metrics here: answers
running, tokens as they are handed over, and failures by contract code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from django.conf import settings
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool

from chatproject import metrics

from . import stream_errors
from .provider import model_stream
from .stream_events import (
    StreamChunk,
    StreamComplete,
    StreamError,
    StreamEvent,
    StreamStart,
    StreamStopped,
    StreamTool,
)
from .tools import tool_schema

logger = logging.getLogger(__name__)

# A model that keeps calling tools gets this many rounds, then one more without tools.
MAX_TOOL_ROUNDS = 5

# The reader reads the lines at hand for at most this long before giving the event loop
# back, unless the generator waits for one with nothing buffered (then it gives it back at
# once): the generator then takes a slice's lines at once, not one wake-up per line.
READ_SLICE_S = 0.002


def delta_max_chars() -> int:
    """How long a chunk's delta grows before it goes out at once: in JSON a character takes
    at most 6 bytes, so a chunk stays well inside the half of the frame cap that one event
    may take (``chat.frame_size``), whatever the cap is set to (16,384 at 256 KiB)."""
    return settings.WS_SEND_MAX_BYTES // 16


# Queued after a round's last line: the response ended, with or without its done line.
_END = object()
# Queued when ``stop`` is set.
_STOP = object()


class IncompleteStream(Exception):
    """Ollama's response ended without its final ``done`` line."""


class _Stopped(Exception):
    """``stop`` was set."""


class _Answer:
    """The text, counters and coalescing buffer of one answer."""

    def __init__(self, *, model: str, delay_s: float) -> None:
        self.model = model
        self.delay_s = delay_s
        self.sent: list[str] = []
        self.buffer: list[str] = []
        self.buffered = 0
        self.max_chars = delta_max_chars()
        self.last_out: float | None = None
        self.tokens_done = 0
        self.round_tokens = 0
        self.tokens_counted = 0
        self.prompt_tokens = 0
        self.started_at = time.monotonic()
        self.first_token_at: float | None = None
        self.tool_calls: list[dict[str, Any]] = []
        self.errors = 0

    @property
    def tokens(self) -> int:
        return self.tokens_done + self.round_tokens

    def add(self, delta: str) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.round_tokens += 1
        self.buffer.append(delta)
        self.buffered += len(delta)

    @property
    def full(self) -> bool:
        """Whether the buffered text must go out now, whatever the time."""
        return self.buffered >= self.max_chars

    def due_in(self) -> float | None:
        """Seconds until the buffered text is due (0: now), or None if nothing is buffered."""
        if not self.buffer:
            return None
        if self.last_out is None or self.full:
            return 0.0
        return max(0.0, self.last_out + self.delay_s - time.monotonic())

    def flush(self, *, complete: bool = False) -> StreamChunk | None:
        """The buffered text as the chunk that goes out now (the last one, with the
        content, if ``complete``); None if nothing is buffered and it is not the last."""
        if not self.buffer and not complete:
            return None
        delta = "".join(self.buffer)
        self.buffer.clear()
        self.buffered = 0
        self.sent.append(delta)
        self.last_out = time.monotonic()
        self.count_tokens()
        return StreamChunk(
            index=len(self.sent) - 1,
            delta=delta,
            tokens=self.tokens,
            is_complete=complete,
            content=self.content if complete else None,
        )

    def round_ended(self, eval_count: int | None, prompt_eval_count: int) -> None:
        """A round's done line is in: its tokens are Ollama's count from now on."""
        self.tokens_done += eval_count if eval_count is not None else self.round_tokens
        self.round_tokens = 0
        self.prompt_tokens += prompt_eval_count

    def count_tokens(self) -> None:
        """Add the tokens not counted yet to the worker's metric."""
        if (new := self.tokens - self.tokens_counted) > 0:
            metrics.TOKENS_STREAMED.inc(new)
            self.tokens_counted = self.tokens

    @property
    def content(self) -> str:
        return "".join(self.sent)

    def end(self, kind, **fields):
        self.count_tokens()
        now = time.monotonic()
        latency = self.first_token_at - self.started_at if self.first_token_at else None
        return kind(
            content=self.content,
            tokens=self.tokens,
            prompt_tokens=self.prompt_tokens,
            model=self.model,
            duration_ms=round((now - self.started_at) * 1000),
            latency_ms=None if latency is None else round(latency * 1000),
            tool_calls=list(self.tool_calls),
            errors=self.errors,
            **fields,
        )


class _Round:
    """One request to Ollama, read from the moment it is made by a task of its own into
    ``queue``: each line's message, then ``_END`` or the exception that ended the reading.
    ``stop`` being set queues ``_STOP``."""

    def __init__(
        self,
        llm,
        history: Sequence[BaseMessage],
        tools: Sequence[dict],
        answer: _Answer,
        stop: asyncio.Event | None,
    ) -> None:
        self.answer = answer
        self.queue: asyncio.Queue = asyncio.Queue()
        self.text: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.done_reason: str | None = None
        self.ended = False
        # Set while the generator waits for a line with nothing buffered.
        self.awaited = False
        self.reader = asyncio.create_task(self._read(model_stream(llm, history, tools=tools)))
        self.stop_wait: asyncio.Future | None = None
        if stop is not None:
            self.stop_wait = asyncio.ensure_future(stop.wait())
            self.stop_wait.add_done_callback(self._stop_set)

    async def _read(self, lines: AsyncGenerator[AIMessageChunk, None]) -> None:
        # Closed here, whatever ends the reading (a cancellation between two lines too), so
        # the response is closed now rather than whenever the generator is collected.
        try:
            async with contextlib.aclosing(lines):
                slice_ends = time.monotonic() + READ_SLICE_S
                async for message in lines:
                    self.queue.put_nowait(message)
                    # Lines already at hand would otherwise be read without a break. A line
                    # the generator waits for with nothing buffered is due at once.
                    if self.awaited or time.monotonic() >= slice_ends:
                        await asyncio.sleep(0)
                        slice_ends = time.monotonic() + READ_SLICE_S
        except Exception as exc:
            self.queue.put_nowait(exc)
        else:
            self.queue.put_nowait(_END)

    def _stop_set(self, waited: asyncio.Future) -> None:
        if not waited.cancelled():
            self.queue.put_nowait(_STOP)

    async def next_chunk(self) -> StreamChunk | None:
        """The next chunk due; None once Ollama's done line is in (its text may still be
        buffered) or the response ended without it. Raises ``_Stopped``, or what reading
        raised."""
        answer = self.answer
        while self.done_reason is None and not self.ended:
            due_in = answer.due_in()
            self.awaited = due_in is None
            try:
                async with asyncio.timeout(due_in):
                    item = await self.queue.get()
            except TimeoutError:
                return answer.flush()
            finally:
                self.awaited = False
            self._take(item)
            # What else arrived meanwhile (the caller was busy) goes in the same chunk.
            while (
                self.done_reason is None
                and not self.ended
                and not self.queue.empty()
                and not answer.full
            ):
                self._take(self.queue.get_nowait())
            if answer.due_in() == 0:
                return answer.flush()
        return None

    def _take(self, item) -> None:
        """Take what one line carried into the round and the answer."""
        if item is _END:
            self.ended = True
            return
        if item is _STOP:
            raise _Stopped
        if isinstance(item, Exception):
            raise item
        delta = item.content
        if delta and isinstance(delta, str):
            self.text.append(delta)
            self.answer.add(delta)
        if item.tool_calls:
            self.calls.extend(item.tool_calls)
        info = item.response_metadata
        if info.get("done_reason"):
            self.done_reason = info["done_reason"]
            usage = item.usage_metadata or {}
            self.answer.round_ended(
                usage.get("output_tokens", info.get("eval_count")),
                usage.get("input_tokens", info.get("prompt_eval_count")) or 0,
            )

    async def close(self) -> None:
        """Stop reading (closing the HTTP response if it is still open)."""
        if self.stop_wait is not None:
            self.stop_wait.cancel()
        self.reader.cancel()
        # Wait for the reader to unwind without swallowing a cancellation of this task.
        await asyncio.wait([self.reader])


async def run_stream(
    llm,
    messages: Sequence[BaseMessage],
    *,
    tools: Sequence[BaseTool] = (),
    stream_delay_ms: int | None = None,
    stop: asyncio.Event | None = None,
    max_tool_rounds: int = MAX_TOOL_ROUNDS,
) -> AsyncIterator[StreamEvent]:
    """Stream one answer of ``llm`` (a ``ChatOllama``) to ``messages``; see the module."""
    delay_ms = settings.STREAM_DELAY if stream_delay_ms is None else stream_delay_ms
    model = getattr(llm, "model", "") or ""
    answer = _Answer(model=model, delay_s=max(0, delay_ms) / 1000)
    history = list(messages)
    by_name = {tool.name: tool for tool in tools}
    schemas = [tool_schema(tool) for tool in tools]
    offer_tools = bool(schemas) and max_tool_rounds > 0
    current = _Round(llm, history, schemas if offer_tools else (), answer, stop)
    metrics.STREAMS_RUNNING.inc()
    try:
        yield StreamStart(model=model)
        for round_no in range(max_tool_rounds + 1):
            if round_no:
                offer_tools = bool(schemas) and round_no < max_tool_rounds
                current = _Round(llm, history, schemas if offer_tools else (), answer, stop)
            try:
                while (chunk := await current.next_chunk()) is not None:
                    yield chunk
            finally:
                await current.close()
            if current.done_reason is None:
                raise IncompleteStream
            if not (current.calls and offer_tools):
                yield answer.flush(complete=True)
                yield answer.end(StreamComplete, finish_reason=current.done_reason)
                return
            if chunk := answer.flush():
                yield chunk
            history.append(AIMessage("".join(current.text), tool_calls=current.calls))
            for call in current.calls:
                result = await _call_tool(by_name, call, answer)
                yield StreamTool(name=call["name"], args=call["args"], result=result)
                history.append(ToolMessage(result, tool_call_id=call["id"], name=call["name"]))
                if stop is not None and stop.is_set():
                    raise _Stopped
    except _Stopped:
        if chunk := answer.flush():
            yield chunk
        yield answer.end(StreamStopped)
    except Exception as exc:
        code, message = _error_of(exc, model)
        metrics.STREAM_ERRORS.labels(code).inc()
        answer.errors += 1
        if chunk := answer.flush():
            yield chunk
        yield answer.end(StreamError, code=code, message=message)
    finally:
        await current.close()
        answer.count_tokens()
        metrics.STREAMS_RUNNING.dec()


def _error_of(exc: Exception, model: str) -> tuple[str, str]:
    if isinstance(exc, IncompleteStream):
        return (
            stream_errors.LLM_UNAVAILABLE,
            "The language model's answer ended without its final line.",
        )
    code, message = stream_errors.classify(exc, model=model)
    if code == stream_errors.INTERNAL:
        logger.exception("stream of model %s failed", model)
    else:
        logger.warning("stream of model %s failed: %s (%s)", model, code, type(exc).__name__)
    return code, message


async def _call_tool(by_name: dict[str, BaseTool], call: dict[str, Any], answer: _Answer) -> str:
    """Run one tool call; its result as text. A call the tool can't serve (an unknown tool,
    bad arguments, a crash) counts as an error and answers ``error: ...``, so the model can
    recover; a tool's own refusal (a division by zero) is an ordinary result."""
    tool = by_name.get(call["name"])
    if tool is None:
        answer.errors += 1
        result = f"error: there is no tool named {call['name']!r}"
    else:
        try:
            result = await tool.ainvoke(call["args"])
        except Exception as exc:
            logger.warning("tool %s failed: %s", call["name"], type(exc).__name__)
            answer.errors += 1
            result = f"error: the tool failed ({type(exc).__name__})"
    if not isinstance(result, str):
        result = str(result)
    answer.tool_calls.append({"name": call["name"], "args": call["args"], "result": result})
    return result
