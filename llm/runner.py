"""The stream runner: one answer from the model as an async generator of stream events
(``llm.stream_events``), independent of where the answer goes.

    async for event in run_stream(chat_model(config), messages, tools=tools, stop=stop):
        ...

What it guarantees:

- the request to Ollama goes out before ``StreamStart`` is yielded, so whatever the caller
  does with the start (a broadcast) overlaps the model's work rather than preceding it;
- deltas are coalesced: a delta goes out at once if no chunk went out in the last
  ``stream_delay_ms`` (so the first one is never delayed), otherwise with the others that
  arrive within that window, at most ``stream_delay_ms`` late. A chunk "goes out" when the
  caller takes it: a caller slower than the delay (a loaded worker) gets what arrived in
  the window after it took the last one, not a chunk per token;
- a chunk is handed over as soon as it is due, and while the caller deals with it (a
  broadcast: Redis round trips) the reading gives the event loop back after every line: a
  response already waiting in the socket is otherwise read without giving the loop to
  anyone, which would hold the caller's writes until much of the answer had been read; a
  chunk due that the caller has not taken yet stops the reading until it does;
- chunks are numbered from 0 without gaps, and their deltas add up to the final content:
  text still buffered is flushed as a chunk before any ending;
- the answer is complete at Ollama's ``done`` line: the last chunk goes out then, without
  waiting for the response to close;
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
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from django.conf import settings
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import BaseTool

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
        now = time.monotonic()
        if self.first_token_at is None:
            self.first_token_at = now
        self.round_tokens += 1
        self.buffer.append(delta)
        if self.last_sent_at is None or now - self.last_sent_at >= self.delay_s:
            return self.flush()
        return None

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
        return chunk

    def handed_over(self, chunk: StreamChunk) -> StreamChunk:
        """``chunk`` goes to the caller now: the next one is due ``delay_s`` from here."""
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
    """One request to Ollama, read by a task of its own from the moment it is made (so the
    whole HTTP exchange lives in that task, and cancelling it closes the connection).

    The reader turns each line into text for the answer's buffer and, when that makes a
    chunk due, queues the chunk (``ready``) and stops reading until ``next_chunk`` takes it:
    a caller not ready yet (a room stream still storing its request) does not have the rest
    of a fast answer parsed meanwhile on the loop it shares with the database thread. While
    the caller of ``next_chunk`` is dealing with a chunk (``busy``), it reads on, letting the
    event loop run between lines.
    ``next_chunk`` waits on the reader, on ``stop`` and on the coalescing deadline together.
    Both run on one event loop, so each step of either is atomic.
    """

    def __init__(
        self, llm, history: Sequence[BaseMessage], tools: Sequence[dict], answer: _Answer
    ) -> None:
        self.answer = answer
        self.text: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.done_reason: str | None = None
        self.eval_count: int | None = None
        self.prompt_eval_count = 0
        self.ready: deque[StreamChunk] = deque()
        self.finished = False
        self.error: Exception | None = None
        self.wakeup: asyncio.Future | None = None
        # ``next_chunk`` waits with no deadline (nothing was buffered when it began).
        self.untimed = False
        # The caller has the last chunk ``next_chunk`` returned, and has not asked again.
        self.busy = False
        # Set while the reader waits for the chunk due to be taken.
        self.taken: asyncio.Future | None = None
        self.reader = asyncio.create_task(self._read(model_stream(llm, history, tools=tools)))

    async def _read(self, stream: AsyncGenerator[ChatGenerationChunk, None]) -> None:
        try:
            async with contextlib.aclosing(stream):
                async for piece in stream:
                    if (chunk := self._absorb(piece)) is not None:
                        self.ready.append(chunk)
                        self._wake()
                        self.taken = asyncio.get_running_loop().create_future()
                        await self.taken
                    elif self.untimed and self.answer.buffer:
                        # Text now waits in the buffer: ``next_chunk`` must set its deadline.
                        self._wake()
                    if self.ready or self.busy:
                        # A chunk is being written: lines already at hand would otherwise
                        # be read without a break, holding that write (its round trips).
                        await asyncio.sleep(0)
                    if self.done_reason is not None:
                        # Ollama's last line: the round is complete. Reading on to the end
                        # of the response (at hand) lets it close by itself.
                        self._wake()
        except Exception as exc:
            self.error = exc
        finally:
            self.finished = True
            self._wake()

    def _wake(self) -> None:
        self.untimed = False
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def _absorb(self, piece: ChatGenerationChunk) -> StreamChunk | None:
        """Take what one line carries; the chunk to send now, if any."""
        message = piece.message
        if message.tool_calls:
            self.calls.extend(message.tool_calls)
        info = piece.generation_info
        if info and info.get("done_reason"):
            self.done_reason = info["done_reason"]
            usage = message.usage_metadata or {}
            self.eval_count = usage.get("output_tokens", info.get("eval_count"))
            self.prompt_eval_count = usage.get("input_tokens", 0) or 0
        delta = message.content
        if not delta or not isinstance(delta, str):
            return None
        self.text.append(delta)
        return self.answer.take(delta)

    async def next_chunk(self, stop_wait: asyncio.Future | None) -> StreamChunk | None:
        """The next chunk due; None once Ollama's last line is in (or the response ended
        without it). Raises ``_Stopped``, or what reading raised."""
        self.busy = False
        while True:
            if self.ready:
                self.busy = True
                if self.taken is not None and not self.taken.done():
                    self.taken.set_result(None)
                return self.answer.handed_over(self.ready.popleft())
            if stop_wait is not None and stop_wait.done():
                raise _Stopped
            if self.done_reason is not None:
                return None
            if self.finished:
                if self.error is not None:
                    raise self.error
                return None
            timeout = self.answer.flush_in()
            self.untimed = timeout is None
            self.wakeup = asyncio.get_running_loop().create_future()
            waiting = {self.wakeup} if stop_wait is None else {self.wakeup, stop_wait}
            done, _ = await asyncio.wait(
                waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not done and (chunk := self.answer.flush()):
                self.busy = True
                return self.answer.handed_over(chunk)

    async def close(self) -> None:
        """Stop reading (closing the HTTP response if it is still open)."""
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
    stop_wait = asyncio.ensure_future(stop.wait()) if stop is not None else None
    offer_tools = bool(schemas) and max_tool_rounds > 0
    current = _Round(llm, history, schemas if offer_tools else (), answer)
    try:
        yield StreamStart(model=model)
        for round_no in range(max_tool_rounds + 1):
            if round_no:
                offer_tools = bool(schemas) and round_no < max_tool_rounds
                current = _Round(llm, history, schemas if offer_tools else (), answer)
            try:
                while (chunk := await current.next_chunk(stop_wait)) is not None:
                    yield chunk
            finally:
                await current.close()
            if current.done_reason is None:
                raise IncompleteStream
            answer.tokens_done += (
                current.eval_count if current.eval_count is not None else answer.round_tokens
            )
            answer.round_tokens = 0
            answer.prompt_tokens += current.prompt_eval_count
            if not (current.calls and offer_tools):
                yield answer.flush(complete=True)
                yield answer.end(StreamComplete, finish_reason=current.done_reason)
                return
            if chunk := answer.flush():
                yield answer.handed_over(chunk)
            history.append(AIMessage("".join(current.text), tool_calls=current.calls))
            for call in current.calls:
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
        await current.close()
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
