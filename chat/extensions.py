"""Where other apps plug into chat without ``chat`` importing them.

The LLM app registers here, from its ``AppConfig.ready()``: its ``stream:*`` events and its
``activeStreams`` part of the ``session:join`` reply, so the gateway stays one table; the
agents it owns, which sessions and messages name by id only (``agent_id``); and a listener
of people's new messages (``register_message_listener``), which answers ``@assistant``. ``llm``
depends on ``chat``, never the reverse (import-linter checks it).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from rest_framework import serializers

from . import broadcaster

# handler(consumer, validated_data) -> ack data
Handler = Callable[[Any, dict], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    """One client event: how to validate its data and what handles it (a consumer method
    name, or a coroutine function taking the consumer and the validated data).

    ``concurrent``: the handler runs as a task of its own once the frame is validated and
    within its throttle, and the consumer goes on with the next message (a broadcast, the
    client's next frame) meanwhile; its reply goes out when it ends. For a handler that
    mostly waits (a send being stored), so the frames for its socket don't wait with it.

    ``throttle``: the event whose budget it spends, when not its own (a regenerate is one
    more LLM request: ``stream:request``'s)."""

    serializer: type[serializers.Serializer]
    handler: str | Handler
    concurrent: bool = False
    throttle: str | None = None


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


@dataclass(frozen=True)
class AgentDirectory:
    """What chat may ask about the agents it names by id, called in a sync (database)
    context: whether an id names an agent, and every agent's (id, name) for forms."""

    exists: Callable[[Any], bool]
    choices: Callable[[], list[tuple[Any, str]]]


agent_directories: list[AgentDirectory] = []


def register_agents(directory: AgentDirectory) -> None:
    if directory not in agent_directories:
        agent_directories.append(directory)


def agent_exists(agent_id) -> bool:
    """Whether an installed app has an agent with this id; with none installed, none does."""
    return any(directory.exists(agent_id) for directory in agent_directories)


def agent_choices() -> list[tuple[Any, str]]:
    return [choice for directory in agent_directories for choice in directory.choices()]


def reserved_usernames() -> set[str]:
    """Names no account may take, lowercased: ``assistant`` and every agent's name, so an
    ``@`` mention of the assistant or of an agent never names a person (called in a sync,
    database, context)."""
    return {"assistant", *(name.lower() for _id, name in agent_choices())}


# listener(messages): told of people's new messages once they are stored, on the event loop
# of the worker that stored them. Its failures are logged, never raised into the send.
MessageListener = Callable[[list], Awaitable[None]]


@dataclass(frozen=True)
class MessageListening:
    """A listener and the messages it wants: ``wants(message)`` is a cheap test run where the
    message is stored (no database), so a message nobody wants costs the send nothing."""

    listener: MessageListener
    wants: Callable[[Any], bool]


message_listeners: list[MessageListening] = []


def register_message_listener(listener: MessageListener, *, wants: Callable[[Any], bool]) -> None:
    listening = MessageListening(listener, wants)
    if listening not in message_listeners:
        message_listeners.append(listening)


def people_messages_sent(messages) -> None:
    """Called by chat's doors for a person's message (``message_send``, ``message:send``
    batches) in or after the transaction that stores new messages: after its commit each
    listener is told of those it wants that a person wrote (role user, an author that is
    no bot). Never for a repeated clientId (nothing new was stored), nor the assistant's own
    messages, a stream request's prompt or a webhook's post, which don't come through these
    doors."""
    people = [
        message
        for message in messages
        if message.role == "user"
        and message.author is not None
        and not getattr(message.author, "is_bot", False)
    ]
    for listening in message_listeners:
        wanted = [message for message in people if listening.wants(message)]
        if wanted:
            transaction.on_commit(
                functools.partial(broadcaster.run_soon, listening.listener, wanted)
            )


# indexer(attachment_id): called after the commit that stored a file to be indexed
# (``chat.services.attachment_index``), from whichever thread committed; it must return at
# once and do its work off the request path.
attachment_indexers: list[Callable[[Any], None]] = []


def register_attachment_indexer(indexer: Callable[[Any], None]) -> None:
    if indexer not in attachment_indexers:
        attachment_indexers.append(indexer)


def attachment_stored(attachment_id) -> None:
    """Hand a stored file that waits for indexing to the registered indexers."""
    for indexer in attachment_indexers:
        indexer(attachment_id)


# task(): a coroutine function the worker's heartbeat (``chat.timers``) awaits every beat,
# for sweeps of work a dead worker left; its failures are logged, never raised.
periodic_tasks: list[Callable[[], Awaitable[None]]] = []


def register_periodic(task: Callable[[], Awaitable[None]]) -> None:
    if task not in periodic_tasks:
        periodic_tasks.append(task)
