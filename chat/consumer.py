"""The ``/ws/chat/`` gateway: a table from event name to (input serializer, handler).

The envelope, auth, throttles, errors and token lifetime are ``chat.gateway_base``'s, shared
with the other WebSocket doors; this module adds rooms, messages, receipts, typing, presence
and the offline queue. Every client frame gets exactly one reply echoing its ``ref``: ``ack``
with the handler's result, or ``error`` with a contract code. Handlers parse, call a service
through ``database_sync_to_async`` and return what the ack carries: rules live in the
services.

Frames for a session reach the sockets that joined it through the session's group, already
encoded once by the sender (``chat.events``); this consumer forwards the text as it is.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from functools import cached_property

from channels.db import database_sync_to_async

from chatproject.errors import DomainError

from . import event_types
from .events import (
    FRAME_MESSAGE_TYPE,
    broadcast_async,
    frame_texts,
    group_for_session,
    is_message_new_by,
)
from .extensions import Route, extra_routes
from .frame_size import frame_fits
from .gateway_base import GatewayConsumer
from .join import session_join_snapshot
from .presence_updates import (
    PRESENCE_MESSAGE_TYPE,
    online_reads,
    presence_batcher,
    presence_frame_text,
    presence_lapsed,
)
from .receipt_writer import receipt_mark_async
from .selectors import session_get_for_member
from .send_writer import message_send_async
from .serializers import (
    MessageEditFrameInput,
    MessageRefInput,
    MessageSendInput,
    NotifyFrameInput,
    ReactionFrameInput,
    pin_state,
    render_message,
)
from .services.mentions import membership_notify_set
from .services.messages import message_delete, message_edit
from .services.pins import message_pin, message_unpin
from .services.reactions import reaction_toggle
from .services.receipts import DELIVERED, SEEN
from .state import get_state
from .timers import connection_timers
from .typing_updates import typing_batcher
from .ws_inputs import AuthRefreshInput, EmptyInput, SessionJoinInput, SessionRefInput

logger = logging.getLogger(__name__)

TYPING_EXPIRY = 6.0


ROUTES: dict[str, Route] = {
    "session:join": Route(SessionJoinInput, "on_session_join"),
    "session:leave": Route(SessionRefInput, "on_session_leave"),
    # Concurrent: frames for this socket keep flowing while its send is stored, but its
    # own message:new waits for the ack (``chat_frame``).
    "message:send": Route(MessageSendInput, "on_message_send", concurrent=True),
    "message:edit": Route(MessageEditFrameInput, "on_message_edit"),
    "message:delete": Route(MessageRefInput, "on_message_delete"),
    "message:delivered": Route(MessageRefInput, "on_message_delivered"),
    "message:seen": Route(MessageRefInput, "on_message_seen"),
    "message:reaction": Route(ReactionFrameInput, "on_message_reaction"),
    "message:pin": Route(MessageRefInput, "on_message_pin"),
    "message:unpin": Route(MessageRefInput, "on_message_unpin"),
    "typing:start": Route(SessionRefInput, "on_typing_start"),
    "typing:stop": Route(SessionRefInput, "on_typing_stop"),
    "auth:refresh": Route(AuthRefreshInput, "on_auth_refresh"),
    "ping": Route(EmptyInput, "on_ping"),
    "session:notify": Route(NotifyFrameInput, "on_session_notify"),
}


class ChatConsumer(GatewayConsumer):
    """One client connection to the chat gateway."""

    routes = ROUTES
    extra_routes = extra_routes
    # The sessions this socket joined. Replaced, never changed in place, so the empty one
    # is shared by every socket that joined none (most of a worker's idle sockets).
    joined: frozenset = frozenset()
    # This socket's message:send requests not yet replied to, and the frames held until
    # they are (``chat_frame``).
    sends_in_flight = 0
    held: deque | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Called when the handshake arrives (the origin check has passed)."""
        self.typing_timers: dict = {}
        await super().connect()

    async def opened(self) -> None:
        """Called once authenticated: presence (kept alive by the worker's heartbeat), the
        first frame, then the offline queue."""
        state = get_state()
        became_online, queued = await state.connection_open(self.user.pk, self.connection_id)
        connection_timers().presence_add(self.user.pk, self.connection_id, presence_lapsed)
        await self.send_connection_success()
        if queued:
            await self._deliver_queued(state, queued)
        if became_online:
            presence_batcher().changed(self.user.pk, online_before=False)

    async def _deliver_queued(self, state, queued: list[tuple[int, str]]) -> None:
        """Send the offline queue one frame at a time, then take off the queue what went
        out: a socket that closes on the way leaves the rest for the next connection. A
        frame too large to send at all (queued before frames were bounded) is dropped, with
        one log line, rather than closing the socket and losing the rest with it."""
        delivered = None
        for entry_id, text in queued:
            if not frame_fits(text):
                logger.warning("dropped a %d-character queued frame over the frame cap for "
                               "user %s", len(text), self.user.pk)  # fmt: skip
            elif not await self.send_fitting(text_data=text):
                break
            delivered = entry_id
        if delivered is not None:
            await state.queue_delivered(self.user.pk, delivered)

    async def closed(self) -> None:
        """Called when the connection ends: typing stops, sessions are left, presence may
        turn offline."""
        for session_id, timer in self.typing_timers.items():
            timer.cancel()
            typing_batcher().stopped(session_id, self.user_data)
        self.typing_timers = {}
        for session_id in self.joined:
            await self._leave(session_id)
        # A heartbeat refresh on its way could put this entry back after its removal.
        await connection_timers().refreshed(self.connection_id)
        if await get_state().presence_disconnect(self.user.pk, self.connection_id):
            presence_batcher().changed(self.user.pk, online_before=True)

    async def dispatch(self, message) -> None:
        # Forwarding an encoded frame touches no database: skip Channels' per-message
        # close_old_connections hop through the shared sync thread (TRAPS, Channels 4.2).
        if message["type"] == FRAME_MESSAGE_TYPE:
            await self.chat_frame(message)
            return
        if message["type"] == PRESENCE_MESSAGE_TYPE:
            await self.presence_changes(message)
            return
        await super().dispatch(message)

    async def chat_frame(self, message) -> None:
        """Called with a frame broadcast to a group this socket is in: its text, encoded
        once by the sender (``chat.events``), goes to the socket as it is."""
        # A frame may keep away from its sender's user (a typist does not see their typing).
        if message.get("exclude") == self.user.pk:
            return
        for text in frame_texts(message):
            if self.held is None and self.sends_in_flight and is_message_new_by(text, self.user.pk):
                # Perhaps the message of a send not yet acked: a client learns of its
                # message from the ack first (the contract). It and what follows it wait.
                self.held = deque()
            if self.held is not None:
                self.held.append(text)
            else:
                await self.send(text_data=text)

    async def replied(self, event: str) -> None:
        """Called when a ``message:send``'s reply has gone out: once none is left in
        flight, the frames held for them go out, in order."""
        if event != "message:send":
            return
        self.sends_in_flight -= 1
        while self.held and not self.sends_in_flight:
            await self.send(text_data=self.held.popleft())
        if not self.held and not self.sends_in_flight:
            self.held = None

    async def presence_changes(self, message) -> None:
        """Called with presence changes of people sharing a joined session: forwarded are
        the entries still true (``chat.presence_updates``), so an older change arriving after
        a newer one can't undo it; none left, nothing is sent. Entries about this socket's
        own user are left out: they are online (this socket is open) and know it."""
        changes = message["changes"]
        holds = await asyncio.gather(*(self._still_true(change) for change in changes))
        kept = [change for change, true in zip(changes, holds, strict=True) if true]
        if kept:
            await self.send(text_data=presence_frame_text(message, kept))

    async def _still_true(self, change: dict) -> bool:
        if change["user"]["id"] == self.user.pk:
            return False
        return await online_reads().online(change["user"]["id"]) == (change["status"] == "online")

    async def session_removed(self, message) -> None:
        """Called when this user was removed from a session: leave its group now, so not
        one more frame of it reaches this socket, and say so (``user:left`` with the user)."""
        session_id = uuid.UUID(message["sessionId"])
        if session_id not in self.joined:
            return
        await self._leave(session_id)
        data = event_types.user_left(session_id=session_id, user=self.user_data)
        await self._send_frame(event_types.USER_LEFT, data)

    # --- handlers --------------------------------------------------------------------------

    @cached_property
    def join_resumes(self) -> dict:
        """Per session, the seq a ``session:join`` answered ``hasMore`` up to: the client is
        asked to join again from there."""
        return {}

    def throttle_exempt(self, event: str, data: dict) -> bool:
        """A join that continues a ``hasMore`` replay on this connection is not counted: the
        join limit is for joins, and a long catch-up takes as many pages as it has events."""
        return (
            event == "session:join"
            and data.get("lastSeq") is not None
            and self.join_resumes.get(data["sessionId"]) == data["lastSeq"]
        )

    async def on_session_join(self, data) -> dict:
        session_id = data["sessionId"]
        await database_sync_to_async(session_get_for_member)(user=self.user, session_id=session_id)
        await self.channel_layer.group_add(group_for_session(session_id), self.channel_name)
        snapshot = await database_sync_to_async(session_join_snapshot)(
            user=self.user, session_id=session_id, last_seq=data["lastSeq"]
        )
        if snapshot["hasMore"] and snapshot["missed"]:
            self.join_resumes[session_id] = snapshot["missed"][-1]["seq"]
        else:
            self.join_resumes.pop(session_id, None)
        if session_id not in self.joined:
            self.joined = self.joined | {session_id}
            await broadcast_async(
                group_for_session(session_id),
                {
                    "event": event_types.USER_JOINED,
                    "data": event_types.user_joined(session_id=session_id, user=self.user_data),
                },
                exclude_user=self.user.pk,
            )
        return snapshot

    async def on_session_leave(self, data) -> dict:
        session_id = data["sessionId"]
        if session_id in self.joined:
            await self._leave(session_id)
        return {"sessionId": str(session_id)}

    async def on_message_send(self, data) -> dict:
        self.sends_in_flight += 1
        message = await message_send_async(
            author=self.user,
            session_id=data["sessionId"],
            content=data["content"],
            parent_id=data["parentMessageId"],
            client_id=data["clientId"],
        )
        return render_message(message)

    async def on_message_edit(self, data) -> dict:
        return await database_sync_to_async(self._edit_message)(data)

    def _edit_message(self, data) -> dict:
        return render_message(
            message_edit(user=self.user, message_id=data["messageId"], content=data["content"])
        )

    async def on_message_delete(self, data) -> dict:
        message = await database_sync_to_async(message_delete)(
            user=self.user, message_id=data["messageId"]
        )
        return {"sessionId": str(message.session_id), "messageId": str(message.pk)}

    async def on_message_delivered(self, data) -> dict:
        return await receipt_mark_async(
            user=self.user, message_id=data["messageId"], kind=DELIVERED
        )

    async def on_message_seen(self, data) -> dict:
        return await receipt_mark_async(user=self.user, message_id=data["messageId"], kind=SEEN)

    async def on_message_reaction(self, data) -> dict:
        return await database_sync_to_async(reaction_toggle)(
            user=self.user, message_id=data["messageId"], emoji=data["emoji"]
        )

    async def on_message_pin(self, data) -> dict:
        return await database_sync_to_async(self._pin_change)(message_pin, data)

    async def on_message_unpin(self, data) -> dict:
        return await database_sync_to_async(self._pin_change)(message_unpin, data)

    def _pin_change(self, service, data) -> dict:
        return pin_state(service(user=self.user, message_id=data["messageId"]).message)

    async def on_session_notify(self, data) -> dict:
        notify = await database_sync_to_async(membership_notify_set)(
            user=self.user, session_id=data["sessionId"], notify=data["notify"]
        )
        return {"sessionId": str(data["sessionId"]), "notify": notify}

    async def on_typing_start(self, data) -> dict:
        session_id = self._require_joined(data["sessionId"])
        previous = self.typing_timers.pop(session_id, None)
        if previous is not None:
            previous.cancel()  # already typing: only the expiry moves, nobody is told
        else:
            typing_batcher().started(session_id, self.user_data)
        self.typing_timers[session_id] = asyncio.create_task(self._typing_expiry(session_id))
        return {"sessionId": str(session_id)}

    async def on_typing_stop(self, data) -> dict:
        session_id = self._require_joined(data["sessionId"])
        timer = self.typing_timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()
            typing_batcher().stopped(session_id, self.user_data)
        return {"sessionId": str(session_id)}

    # --- helpers ---------------------------------------------------------------------------

    def _require_joined(self, session_id):
        if session_id not in self.joined:
            raise DomainError("FORBIDDEN", "Join the session (session:join) first.")
        return session_id

    async def _leave(self, session_id) -> None:
        self.joined = self.joined - {session_id}
        timer = self.typing_timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()
            typing_batcher().stopped(session_id, self.user_data)
        await self.channel_layer.group_discard(group_for_session(session_id), self.channel_name)
        await broadcast_async(
            group_for_session(session_id),
            {
                "event": event_types.USER_LEFT,
                "data": event_types.user_left(session_id=session_id, user=self.user_data),
            },
        )

    async def _typing_expiry(self, session_id) -> None:
        await asyncio.sleep(TYPING_EXPIRY)
        if self.typing_timers.get(session_id) is asyncio.current_task():
            del self.typing_timers[session_id]
            typing_batcher().stopped(session_id, self.user_data)
