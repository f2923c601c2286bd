"""Where other apps plug into the chat gateway without ``chat`` importing them.

The LLM app registers its ``stream:*`` events and its ``activeStreams`` part of the
``session:join`` reply here, from its ``AppConfig.ready()``: ``chat`` never imports
LangChain, and the gateway stays one table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

# handler(consumer, validated_data) -> ack data
Handler = Callable[[Any, dict], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    """One client event: how to validate its data and what handles it (a consumer method
    name, or a coroutine function taking the consumer and the validated data)."""

    serializer: type[serializers.Serializer]
    handler: str | Handler


extra_routes: dict[str, Route] = {}

# provider(session_id) -> list of active streams, called in a sync (database) context.
active_stream_providers: list[Callable[[Any], list[dict]]] = []


def register_route(event: str, route: Route) -> None:
    extra_routes[event] = route


def register_active_streams(provider: Callable[[Any], list[dict]]) -> None:
    if provider not in active_stream_providers:
        active_stream_providers.append(provider)


def active_streams(session_id) -> list[dict]:
    return [stream for provider in active_stream_providers for stream in provider(session_id)]
