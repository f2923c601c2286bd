"""The chat model: which model, sampling and limits an answer uses, and the ``ChatOllama``
client built from them.

A request's ``config`` wins over the agent, the agent over the settings (``OLLAMA_MODEL``).
The client always has explicit timeouts: ollama-python's default is None, and a stalled
Ollama would otherwise hold a stream (and its slot) forever (TRAPS).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import certifi
import httpx
from django.conf import settings
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_ollama import ChatOllama, OllamaEmbeddings

logger = logging.getLogger(__name__)

# settings.LLM_DEFAULT_MAX_TOKENS cuts an answer (finishReason "length") unless the request
# or the agent says otherwise: a room should not be held by one endless answer.
# settings.OLLAMA_READ_TIMEOUT also covers loading the model and evaluating the prompt, since
# Ollama sends nothing until the first token: generous, but never infinite.
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ModelConfig:
    model: str
    temperature: float | None
    max_tokens: int


def model_config(*, agent=None, config: dict | None = None) -> ModelConfig:
    """The settings of one answer: the request's ``config`` ({model, temperature,
    maxTokens}), then the agent's, then the platform's defaults."""
    config = config or {}

    def pick(key: str, agent_value):
        value = config.get(key)
        return value if value not in (None, "") else agent_value

    return ModelConfig(
        model=pick("model", agent.model if agent else None) or settings.OLLAMA_MODEL,
        temperature=pick("temperature", agent.temperature if agent else None),
        max_tokens=pick("maxTokens", agent.max_tokens if agent else None)
        or settings.LLM_DEFAULT_MAX_TOKENS,
    )


# The clients made here: chat models, and the embedding model (``llm.embeddings``).
Model = TypeVar("Model", ChatOllama, OllamaEmbeddings)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every Ollama client of the process.

    ChatOllama builds two httpx clients per instance, and each would load the CA bundle
    into a new context: ~50 ms of event-loop time per answer (bench/stream.py). Sharing
    one built context makes building a model ~1 ms.
    """
    return ssl.create_default_context(cafile=certifi.where())


def chat_model(config: ModelConfig, *, base_url: str | None = None) -> ChatOllama:
    """A ``ChatOllama`` for ``config`` talking to ``OLLAMA_URL`` (or ``base_url``).

    Its async client sends through an httpx transport made here and passed in
    ``async_client_kwargs`` (documented by langchain-ollama as kwargs of the httpx
    ``AsyncClient``), so the connections are ours to close (``close_model``): ChatOllama
    never closes its clients itself.
    """
    read = settings.OLLAMA_READ_TIMEOUT
    kwargs = {}
    if config.temperature is not None:
        kwargs["temperature"] = config.temperature
    return ChatOllama(
        base_url=base_url or settings.OLLAMA_URL,
        model=config.model,
        num_predict=config.max_tokens,
        client_kwargs={"timeout": httpx.Timeout(CONNECT_TIMEOUT_S, read=read)},
        sync_client_kwargs={"verify": tls_context()},
        async_client_kwargs={"transport": httpx.AsyncHTTPTransport(verify=tls_context())},
        **kwargs,
    )


def model_stream(
    llm: ChatOllama, messages: Sequence[BaseMessage], *, tools: Sequence[dict] = ()
) -> AsyncGenerator[AIMessageChunk, None]:
    """The model's answer to ``messages`` as it comes (LangChain's ``astream``), one
    message chunk per line of Ollama's response: the one of the ``done`` line carries the
    counts (``usage_metadata``) and ``done_reason`` (``response_metadata``), tool calls come
    as ``tool_calls``. ``tools`` are in Ollama's (OpenAI) format (``tools.tool_schema``).

    They go to ``astream`` as a keyword argument for the model, as ``bind_tools`` would pass
    them (it only converts them to that format and binds them): without the binding's own
    async generator and config merge around every chunk of the answer (docs/benchmarks.md,
    stream passthrough).
    """
    if tools:
        return llm.astream(list(messages), tools=list(tools))
    return llm.astream(list(messages))


async def close_model(llm: ChatOllama | OllamaEmbeddings) -> None:
    """Close the model's HTTP connections now (an answer still being read ends with a
    transport error) rather than whenever the model is collected; a chat model or the
    embedding model (``llm.embeddings``), both made with a transport of their own."""
    transport = (llm.async_client_kwargs or {}).get("transport")
    if transport is not None:
        await transport.aclose()


@contextlib.asynccontextmanager
async def model_closing(llm: Model) -> AsyncIterator[Model]:
    """Use ``llm`` for the block, then close its connections (a failure to close is logged:
    the answer has been made by then)."""
    try:
        yield llm
    finally:
        try:
            await close_model(llm)
        except Exception:
            logger.warning("closing the model client failed", exc_info=True)
