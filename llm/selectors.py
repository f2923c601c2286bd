"""Reads of LLM data, each checking that the caller may see what it returns: agents, a
stream's status and metrics (from its row, and from the shared state while it runs), and
``/ws/ai/`` conversations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from django.utils import timezone

from chat.models import ChatSession, Membership
from chat.selectors import membership_get, session_get
from chat.serializers import iso
from chatproject.errors import forbidden, not_found

from .models import Agent, Stream
from .stream_state import get_stream_state


def _as_uuid(value, what: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError) as exc:
        raise not_found(what) from exc


def agent_list():
    return Agent.objects.all()


def agent_get(agent_id) -> Agent:
    agent = Agent.objects.filter(pk=_as_uuid(agent_id, "Agent")).first()
    if agent is None:
        raise not_found("Agent")
    return agent


def agent_find(agent_id) -> Agent | None:
    """The agent a session or message names (``agent_id``), or None: for no id, or for an
    id whose agent is gone."""
    return None if agent_id is None else Agent.objects.filter(pk=agent_id).first()


def agent_exists(agent_id) -> bool:
    return Agent.objects.filter(pk=agent_id).exists()


def agent_choices() -> list[tuple[uuid.UUID, str]]:
    """Every agent's (id, name), by name: what a form offers."""
    return list(Agent.objects.order_by("name").values_list("pk", "name"))


def stream_get_for_member(*, user, stream_id) -> Stream:
    """The stream, if ``user`` is a member of its session: NOT_FOUND, else FORBIDDEN."""
    stream = Stream.objects.filter(pk=_as_uuid(stream_id, "Stream")).first()
    if stream is None:
        raise not_found("Stream")
    if membership_get(user=user, session_id=stream.session_id) is None:
        raise forbidden("You are not a member of this stream's session.")
    return stream


def _live(stream: Stream) -> dict | None:
    """The running stream's counters from the shared state (None once it has ended)."""
    if stream.status in Stream.FINAL:
        return None
    return get_stream_state().stream_snapshot(str(stream.pk))


def _from_timestamp(value) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def stream_status(stream: Stream) -> dict:
    """CONTRACT ``GET /api/chat/streams/:id/status``. ``progress`` is the share of the
    answer's token budget (``maxTokens``) used while it runs, and 1 once it has ended."""
    live = _live(stream)
    status, tokens = stream.status, stream.tokens_generated
    if live is not None:
        status, tokens = live["status"], live["tokens"]
    if status in Stream.FINAL:
        progress = 1.0
    elif stream.max_tokens:
        progress = round(min(tokens / stream.max_tokens, 0.99), 4)
    else:
        progress = 0.0
    return {
        "streamId": str(stream.pk),
        "sessionId": str(stream.session_id),
        "messageId": str(stream.message_id),
        "status": status,
        "progress": progress,
        "tokensGenerated": tokens,
        "startedAt": iso(stream.started_at),
        "completedAt": iso(stream.completed_at),
        "model": stream.model,
    }


def stream_metrics(stream: Stream) -> dict:
    """CONTRACT ``GET /api/chat/streams/:id/metrics``. ``totalTokens`` counts the tokens
    generated (the answer's ``tokens``); ``tokensPerSecond`` is over the generation time,
    from the first token to the end (or now, while it runs)."""
    live = _live(stream)
    if live is not None:
        tokens, chunks, sent = live["tokens"], live["chunks"], live["bytes"]
        first_token_at = _from_timestamp(live["firstTokenAt"])
        end = timezone.now()
    else:
        tokens, chunks, sent = stream.tokens_generated, stream.chunks_sent, stream.bytes_sent
        first_token_at = stream.first_token_at
        end = stream.completed_at or timezone.now()
    duration = (end - stream.started_at).total_seconds()
    latency = None
    per_second = 0.0
    if first_token_at is not None:
        latency = round((first_token_at - stream.started_at).total_seconds() * 1000)
        generating = (end - first_token_at).total_seconds()
        per_second = round(tokens / generating, 2) if generating > 0 else 0.0
    return {
        "streamId": str(stream.pk),
        "totalTokens": tokens,
        "promptTokens": stream.prompt_tokens,
        "tokensPerSecond": per_second,
        "latency": latency,
        "durationMs": round(duration * 1000),
        "bandwidth": sent,
        "chunksSent": chunks,
        "errors": stream.errors,
    }


def conversation_get_for_owner(*, user, conversation_id) -> ChatSession:
    """A session whose only member is ``user``: NOT_FOUND if unknown, FORBIDDEN if it is
    someone else's or a room shared with others."""
    session = session_get(session_id=conversation_id)
    members = list(Membership.objects.filter(session=session).values_list("user_id", flat=True))
    if user.pk not in members:
        raise forbidden("This conversation is not yours.")
    if members != [user.pk]:
        raise forbidden(
            "This session has other members: it is a room, not a conversation "
            "(ask the assistant there with stream:request on /ws/chat/)."
        )
    return session
