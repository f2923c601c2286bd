"""The stream runner: one answer from the model as an async generator of stream events
(``llm.stream_events``), independent of where the answer goes.

    async for event in run_stream(chat_model(config), messages, tools=tools, stop=stop):
        ...

What it guarantees:

- deltas are coalesced: a delta goes out at once if no chunk went out in the last
  ``stream_delay_ms`` (so the first one is never delayed), otherwise with the others that
  arrive within that window, at most ``stream_delay_ms`` late;
- chunks are numbered from 0 without gaps, and their deltas add up to the final content:
  text still buffered is flushed as a chunk before any ending;
- tool calls are executed, reported (``StreamTool``), fed back, and the answer goes on;
- tokens are Ollama's own counts (``eval_count`` / ``prompt_eval_count``), summed over the
  tool rounds; while an answer runs, each received piece counts as one token;
- an answer that ends without Ollama's ``done`` line is an error (``LLM_UNAVAILABLE``):
  neither ollama-python nor LangChain raises for it;
- setting ``stop`` ends the answer with ``StreamStopped``, and cancelling or closing the
  generator ends it silently; either way the HTTP request to Ollama is closed, because the
  task that reads it is cancelled (the emulator's tests prove that closes the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from django.conf import settings
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool

from . import stream_errors
from .stream_events import (
    StreamChunk,
    StreamComplete,
    StreamError,
    StreamEvent,
    StreamStart,
    StreamStopped,
    StreamTool,
)

logger = logging.getLogger(__name__)

# A model that keeps calling tools gets this many rounds, then one more without tools.
MAX_TOOL_ROUNDS = 5


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
        self.index = 0
        self.last_sent_at: float | None = None
        self.tokens_done = 0
        self.round_tokens = 0
        self.prompt_tokens = 0
        self.started_at = time.monotonic()
        self.first_token_at: float | None = None
        self.tool_calls: list[dict[str, Any]] = []
        self.errors = 0

    @property
    def tokens(self) -> int:
        return self.tokens_done + self.round_tokens

    def flush_in(self) -> float | None:
        """Seconds until the buffered text is due, or None if nothing is buffered."""
        if not self.buffer:
            return None
        return max(0.0, self.last_sent_at + self.delay_s - time.monotonic())

    def take(self, delta: str) -> StreamChunk | None:
        """Add a delta: the chunk to send now, or None if it waits in the buffer."""
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.round_tokens += 1
        self.buffer.append(delta)
        due = self.last_sent_at is None or time.monotonic() - self.last_sent_at >= self.delay_s
        return self.flush() if due else None

    def flush(self, *, complete: bool = False) -> StreamChunk | None:
        """The buffered text as a chunk (the last one, with the content, if ``complete``)."""
        if not self.buffer and not complete:
            return None
        delta = "".join(self.buffer)
        self.buffer.clear()
        self.sent.append(delta)
        chunk = StreamChunk(
            index=self.index,
            delta=delta,
            tokens=self.tokens,
            is_complete=complete,
            content=self.content if complete else None,
        )
        self.index += 1
        self.last_sent_at = time.monotonic()
        return chunk

    @property
    def content(self) -> str:
        return "".join(self.sent)

    def end(self, kind, **fields):
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
    """What one request to Ollama produced besides text."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.done_reason: str | None = None
        self.eval_count: int | None = None
        self.prompt_eval_count = 0


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
    stop_wait = asyncio.ensure_future(stop.wait()) if stop is not None else None
    yield StreamStart(model=model)
    try:
        for round_no in range(max_tool_rounds + 1):
            offer_tools = bool(tools) and round_no < max_tool_rounds
            runnable = llm.bind_tools(list(tools)) if offer_tools else llm
            outcome = _Round()
            # aclosing: if this generator is closed or cancelled mid-round, the round's
            # reader task is cancelled at once rather than whenever the round is collected.
            round_chunks = _stream_round(runnable, history, answer, outcome, stop_wait)
            async with contextlib.aclosing(round_chunks) as chunks:
                async for chunk in chunks:
                    yield chunk
            if outcome.done_reason is None:
                raise IncompleteStream
            answer.tokens_done += (
                outcome.eval_count if outcome.eval_count is not None else answer.round_tokens
            )
            answer.round_tokens = 0
            answer.prompt_tokens += outcome.prompt_eval_count
            if not (outcome.calls and offer_tools):
                yield answer.flush(complete=True)
                yield answer.end(StreamComplete, finish_reason=outcome.done_reason)
                return
            if chunk := answer.flush():
                yield chunk
            history.append(AIMessage("".join(outcome.text), tool_calls=outcome.calls))
            for call in outcome.calls:
                result = await _call_tool(by_name, call, answer)
                yield StreamTool(name=call["name"], args=call["args"], result=result)
                history.append(ToolMessage(result, tool_call_id=call["id"], name=call["name"]))
                if stop_wait is not None and stop_wait.done():
                    raise _Stopped
    except _Stopped:
        if chunk := answer.flush():
            yield chunk
        yield answer.end(StreamStopped)
    except Exception as exc:
        code, message = _error_of(exc, model)
        answer.errors += 1
        if chunk := answer.flush():
            yield chunk
        yield answer.end(StreamError, code=code, message=message)
    finally:
        if stop_wait is not None:
            stop_wait.cancel()


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


async def _stream_round(
    runnable, history, answer: _Answer, outcome: _Round, stop_wait: asyncio.Future | None
) -> AsyncIterator[StreamChunk]:
    """One request to Ollama: yields the chunks due while reading it, fills ``outcome``.

    A separate task reads the response (so the whole HTTP exchange lives in one task, and
    cancelling that task closes it); this loop waits on it, on ``stop`` and on the
    coalescing deadline together.
    """
    queue: asyncio.Queue = asyncio.Queue()
    reader = asyncio.create_task(_read(runnable, history, queue))
    getter: asyncio.Future | None = None
    try:
        while True:
            if stop_wait is not None and stop_wait.done():
                raise _Stopped
            if getter is None:
                getter = asyncio.ensure_future(queue.get())
            waiting = {getter} if stop_wait is None else {getter, stop_wait}
            done, _ = await asyncio.wait(
                waiting, timeout=answer.flush_in(), return_when=asyncio.FIRST_COMPLETED
            )
            if stop_wait is not None and stop_wait in done:
                raise _Stopped
            if getter not in done:
                if chunk := answer.flush():
                    yield chunk
                continue
            kind, value = getter.result()
            getter = None
            if kind == "end":
                return
            if kind == "error":
                raise value
            if chunk := _absorb(value, answer, outcome):
                yield chunk
    finally:
        if getter is not None:
            getter.cancel()
        reader.cancel()
        # Wait for the reader to unwind (closing the HTTP response) without swallowing a
        # cancellation of this task.
        await asyncio.wait([reader])


async def _read(runnable, history, queue: asyncio.Queue) -> None:
    try:
        async for piece in runnable.astream(history):
            queue.put_nowait(("piece", piece))
    except Exception as exc:
        queue.put_nowait(("error", exc))
    else:
        queue.put_nowait(("end", None))


def _absorb(piece, answer: _Answer, outcome: _Round) -> StreamChunk | None:
    """Take what one LangChain chunk carries; the chunk to send now, if any."""
    outcome.calls.extend(getattr(piece, "tool_calls", None) or [])
    metadata = getattr(piece, "response_metadata", None) or {}
    if metadata.get("done_reason"):
        outcome.done_reason = metadata["done_reason"]
        usage = getattr(piece, "usage_metadata", None) or {}
        outcome.eval_count = usage.get("output_tokens", metadata.get("eval_count"))
        outcome.prompt_eval_count = usage.get("input_tokens", 0) or 0
    delta = piece.content if isinstance(piece.content, str) else ""
    if not delta:
        return None
    outcome.text.append(delta)
    return answer.take(delta)


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
