"""Helpers for the tests of regenerate and edit-and-resend: a room, members joined to it, an
answer asked and finished, and a request whose reply may come after the stream's first
frames."""

from __future__ import annotations

from channels.db import database_sync_to_async

from chat.models import Message
from chat.services.sessions import session_create
from llm.models import Stream

from ..chat.conftest import request
from .streams import frames_until_end, request_seeing, streams_finished


@database_sync_to_async
def make_room(alice, bob):
    return session_create(creator=alice, title="general", member_ids=[bob.pk])


async def joined(ws_connect, user, room):
    ws = await ws_connect(user)
    reply = await request(ws, "session:join", {"sessionId": str(room.pk)}, ref="join")
    assert reply["event"] == "ack", reply
    return ws


def keep(ws, frames: list[dict]) -> None:
    """Frames read ahead of a reply, kept for the next read (``streams.receive``)."""
    ws.__dict__.setdefault("pending", []).extend(frames)


async def send(ws, event: str, data: dict, ref: str = "r") -> dict:
    """The reply to a frame (``ack`` or ``error``); frames before it are kept."""
    reply, early = await request_seeing(ws, event, data, ref=ref)
    keep(ws, early)
    return reply


async def answered(ws, room, prompt: str = "question?") -> dict:
    """Ask in the room and wait for the answer to end: the ack's data."""
    reply = await send(ws, "stream:request", {"sessionId": str(room.pk), "prompt": prompt})
    assert reply["event"] == "ack", reply
    await frames_until_end(ws, reply["data"]["streamId"])
    await streams_finished()
    return reply["data"]


async def regenerated(ws, message_id: str, **extra) -> dict:
    """Regenerate over the WebSocket and wait for the new version to end: the ack's data."""
    reply = await send(ws, "stream:regenerate", {"messageId": message_id, **extra})
    assert reply["event"] == "ack", reply
    await frames_until_end(ws, reply["data"]["streamId"])
    await streams_finished()
    return reply["data"]


@database_sync_to_async
def saved(message_id) -> Message:
    return Message.objects.get(pk=message_id)


@database_sync_to_async
def versions_of(message_id) -> list[Stream]:
    return list(Stream.objects.filter(message_id=message_id).order_by("version"))


def last_request_messages(emulator) -> list[dict]:
    """What the model was sent last: ``[{role, content}]``."""
    return emulator.events("request")[-1]["messages"]
