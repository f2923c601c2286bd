"""What the stream runner yields: plain objects, one per thing that happened in an answer.

Every door (room streams, ``/ws/ai/``, SSE, ``/api/llm/query``) turns these into its own
wire format. An answer yields ``StreamStart``, then ``StreamChunk`` and ``StreamTool`` in the
order they happened, then exactly one of ``StreamComplete``, ``StreamStopped`` or
``StreamError``. The deltas of the chunks always add up to the final ``content``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StreamStart:
    model: str


@dataclass(frozen=True)
class StreamChunk:
    index: int
    """Counts the answer's chunks from 0, with no gaps."""
    delta: str
    tokens: int
    """Tokens generated so far (exact once the model reports its count at the end)."""
    is_complete: bool = False
    content: str | None = None
    """The whole answer: on the last chunk of a completed answer only."""


@dataclass(frozen=True)
class StreamTool:
    name: str
    args: dict[str, Any]
    result: str


@dataclass(frozen=True)
class StreamEnd:
    """What every ending carries: the text so far and what it cost."""

    content: str
    tokens: int
    prompt_tokens: int
    model: str
    duration_ms: int
    latency_ms: int | None
    """From the start to the first token; None if none came."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0
    """Failures met on the way (tool errors, and the one that ended the answer)."""


@dataclass(frozen=True)
class StreamComplete(StreamEnd):
    finish_reason: str = "stop"


@dataclass(frozen=True)
class StreamStopped(StreamEnd):
    pass


@dataclass(frozen=True)
class StreamError(StreamEnd):
    code: str = "INTERNAL"
    message: str = ""


StreamEvent = StreamStart | StreamChunk | StreamTool | StreamComplete | StreamStopped | StreamError
