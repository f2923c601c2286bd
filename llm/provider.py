"""The chat model: which model, sampling and limits an answer uses, and the ``ChatOllama``
client built from them.

A request's ``config`` wins over the agent, the agent over the settings (``OLLAMA_MODEL``).
The client always has explicit timeouts: ollama-python's default is None, and a stalled
Ollama would otherwise hold a stream (and its slot) forever (TRAPS).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from django.conf import settings
from langchain_ollama import ChatOllama

# An answer longer than this is cut by Ollama (finishReason "length") unless the request or
# the agent says otherwise: a room should not be held by one endless answer.
DEFAULT_MAX_TOKENS = 2048
CONNECT_TIMEOUT_S = 10.0
# Ollama sends nothing until the first token, so the read timeout also covers loading the
# model and evaluating the prompt: generous, but never infinite.
READ_TIMEOUT_S = 120.0


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
        or getattr(settings, "LLM_DEFAULT_MAX_TOKENS", DEFAULT_MAX_TOKENS),
    )


def chat_model(config: ModelConfig, *, base_url: str | None = None) -> ChatOllama:
    """A ``ChatOllama`` for ``config`` talking to ``OLLAMA_URL`` (or ``base_url``)."""
    read = getattr(settings, "OLLAMA_READ_TIMEOUT", READ_TIMEOUT_S)
    kwargs = {}
    if config.temperature is not None:
        kwargs["temperature"] = config.temperature
    return ChatOllama(
        base_url=base_url or settings.OLLAMA_URL,
        model=config.model,
        num_predict=config.max_tokens,
        client_kwargs={"timeout": httpx.Timeout(CONNECT_TIMEOUT_S, read=read)},
        **kwargs,
    )
