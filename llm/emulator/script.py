"""What the Ollama emulator says and how it misbehaves: the ``Script`` a test sets, the
``ToolCall`` it may ask the model to make, and the helpers that turn a request into tokens.

A ``Script`` is a plain dataclass so tests can build one in-process; ``Script.from_json`` /
``Script.to_json`` are the same thing over the emulator's control endpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FAILURES = ("http_503", "error_line", "cut", "stall", "no_done")
"""Failure modes:

- ``http_503``: answer 503 ``{"error": ...}`` before any body, as a full Ollama queue does;
- ``error_line``: send ``fail_after`` tokens, then an ``{"error": ...}`` NDJSON line, then end;
- ``cut``: send ``fail_after`` tokens, then drop the connection (no terminating chunk);
- ``stall``: send ``fail_after`` tokens, then send nothing more until the client hangs up;
- ``no_done``: send ``fail_after`` tokens, then end the body cleanly without the done line.

``fail_after`` = None means "after every token".
"""

DEFAULT_MODELS = ("llama3.2", "qwen2.5")
DEFAULT_EMBED_MODELS = ("nomic-embed-text",)
EMBED_DIMENSIONS = 768
DEFAULT_503_ERROR = "server busy, please try again.  maximum pending requests exceeded"
DEFAULT_LINE_ERROR = "an error was encountered while running the model: unexpected EOF"

_TOKEN_RE = re.compile(r"\s*\S+")


@dataclass
class ToolCall:
    """One function call the emulated model makes; Ollama sends ``arguments`` as an object."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, value: ToolCall | Mapping[str, Any]) -> ToolCall:
        if isinstance(value, ToolCall):
            return value
        if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
            raise ValueError("a tool call needs a string 'name'")
        # Accept LangChain's spelling ("args") as well as Ollama's ("arguments").
        arguments = value.get("arguments", value.get("args", {}))
        if not isinstance(arguments, Mapping):
            raise ValueError("a tool call's arguments must be an object")
        return cls(name=value["name"], arguments=dict(arguments))

    def to_wire(self, index: int) -> dict[str, Any]:
        return {
            "id": f"call_emulator_{index}",
            "function": {"index": index, "name": self.name, "arguments": self.arguments},
        }


@dataclass
class Script:
    """The emulated model's behaviour. Every field has a default that behaves like a healthy,
    instant Ollama echoing the last user message."""

    reply: str | None = None
    """Whole answer text, split into word tokens. None: derive it from the request
    ("Echo: <last user message>", or "Tool result: <content>" after a tool message)."""

    tokens: list[str] | None = None
    """Exact deltas to stream; wins over ``reply``."""

    num_tokens: int | None = None
    """Stream exactly this many tokens: the reply is cut short or repeated to fit."""

    delay_ms: float = 0.0
    """Pause before each token after the first."""

    delay_max_ms: float | None = None
    """With it, each pause between tokens is drawn uniformly from ``delay_ms`` to this (a
    model under varying load); None: always ``delay_ms``."""

    first_delay_ms: float = 0.0
    """Pause before the first token (prompt evaluation / model load time)."""

    first_delay_max_ms: float | None = None
    """With it, each answer's pause before its first token is drawn uniformly from
    ``first_delay_ms`` to this; None: always ``first_delay_ms``."""

    failure: str | None = None
    """One of ``FAILURES`` or None."""

    fail_after: int | None = None
    """Tokens sent before the failure strikes; None: all of them."""

    error: str | None = None
    """Text of the ``error`` for ``http_503`` / ``error_line``; None: Ollama's own wording."""

    tool_calls: list[ToolCall] = field(default_factory=list)
    """Calls the model makes whenever the request offers ``tools`` and its last message is not
    a ``tool`` result; after a tool result it answers in text."""

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    """Models the server has; any other name gets Ollama's 404."""

    prompt_eval_count: int | None = None
    """Reported prompt tokens; None: counted from the request's words."""

    embed_models: list[str] = field(default_factory=lambda: list(DEFAULT_EMBED_MODELS))
    """Embedding models the server has (``/api/embed``); listed after ``models``."""

    embed_delay_ms: float = 0.0
    """Pause before an ``/api/embed`` answer (a model busy embedding a long file)."""

    def __post_init__(self) -> None:
        if self.failure is not None and self.failure not in FAILURES:
            raise ValueError(f"failure must be one of {FAILURES} or None, not {self.failure!r}")
        self.tool_calls = [ToolCall.coerce(call) for call in self.tool_calls]
        if self.tokens is not None:
            self.tokens = [str(token) for token in self.tokens]
        self.models = [str(name) for name in self.models]
        self.embed_models = [str(name) for name in self.embed_models]
        for name in ("num_tokens", "fail_after", "prompt_eval_count"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer or None")
        if self.delay_ms < 0 or self.first_delay_ms < 0 or self.embed_delay_ms < 0:
            raise ValueError("delays must not be negative")
        for low, high in (("delay_ms", "delay_max_ms"), ("first_delay_ms", "first_delay_max_ms")):
            top = getattr(self, high)
            if top is not None and top < getattr(self, low):
                raise ValueError(f"{high} must be at least {low}")

    def token_pause_ms(self, index: int) -> float:
        """The pause before token ``index``: the first-token delay for 0, else the delay
        between tokens, each drawn from its range when the script gives one."""
        if index == 0:
            return _draw(self.first_delay_ms, self.first_delay_max_ms)
        return _draw(self.delay_ms, self.delay_max_ms)

    def updated(self, **changes: Any) -> Script:
        """A copy with ``changes`` applied (validated like a new Script)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown script fields: {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Script:
        return cls().updated(**dict(data))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _draw(low: float, high: float | None) -> float:
    return low if high is None else random.uniform(low, high)


def split_tokens(text: str) -> list[str]:
    """Word tokens whose concatenation is ``text``: each word carries its leading space."""
    tokens = _TOKEN_RE.findall(text)
    if not tokens:
        return [text] if text else []
    tail = text[sum(len(token) for token in tokens) :]
    if tail:
        tokens[-1] += tail
    return tokens


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable) and not isinstance(content, bytes | Mapping):
        return " ".join(_content_text(part) for part in content)
    if isinstance(content, Mapping):
        return str(content.get("text", ""))
    return ""


def default_reply(messages: Sequence[Mapping[str, Any]]) -> str:
    """The deterministic answer to a conversation when the script names none."""
    if messages and messages[-1].get("role") == "tool":
        return "Tool result: " + " ".join(_content_text(messages[-1].get("content")).split())
    for message in reversed(messages):
        if message.get("role") == "user":
            words = " ".join(_content_text(message.get("content")).split())
            return f"Echo: {words}" if words else "Echo:"
    return "Hello from the Ollama emulator."


def count_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """A stand-in for the prompt's token count: words plus a few per message for the
    chat template, as a real tokenizer always counts more than the visible words."""
    return sum(len(_content_text(m.get("content")).split()) + 4 for m in messages)


def plan_tokens(script: Script, messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The deltas the script says to stream for this conversation (before num_predict)."""
    if script.tokens is not None:
        tokens = list(script.tokens)
    else:
        tokens = split_tokens(script.reply if script.reply is not None else default_reply(messages))
    if script.num_tokens is None:
        return tokens
    if not tokens:
        tokens = ["token"]
    planned: list[str] = []
    while len(planned) < script.num_tokens:
        for token in tokens:
            if len(planned) == script.num_tokens:
                break
            # Keep repeated words apart so the text still reads as words.
            if planned and not token[:1].isspace() and not planned[-1][-1:].isspace():
                token = " " + token
            planned.append(token)
    return planned


_WORD_RE = re.compile(r"\w+")


def embed_vector(text: str, dimensions: int = EMBED_DIMENSIONS) -> list[float]:
    """A deterministic embedding of ``text``: its lowercase words hashed into ``dimensions``
    buckets (each with a sign from the same hash), L2-normalised. Texts that share words
    point the same way, so a test can say which passages a question retrieves; one with no
    words is the zero vector, as far from everything as can be."""
    vector = [0.0] * dimensions
    for word in _WORD_RE.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        vector[value % dimensions] += 1.0 if (value >> 63) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector
