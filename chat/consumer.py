"""The ``/ws/chat/`` gateway: a table from event name to (input serializer, handler).

Every client frame gets exactly one reply echoing its ``ref``: ``ack`` with the handler's
result, or ``error`` with a contract code. A bad frame never closes the socket; only a frame
over 64 KiB does (1009). Handlers parse, call a service through ``database_sync_to_async``
and return what the ack carries: rules live in the services.

Frames for a session reach the sockets that joined it through the session's group, already
encoded once by the sender (``chat.events``); this consumer forwards the text as it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime

import orjson
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError

from accounts.auth import user_for_token
from accounts.serializers import UserSerializer
from chatproject import metrics
from chatproject.errors import DomainError, validation_error

from . import event_types
from .events import FRAME_MESSAGE_TYPE, broadcast_async, group_for_session, group_for_user
from .extensions import Route, extra_routes
from .join import session_join_snapshot
from .models import Membership
from .selectors import session_get_for_member
from .serializers import (
    MessageEditFrameInput,
    MessageRefInput,
    MessageSendInput,
    MessageSerializer,
    ReactionFrameInput,
    iso,
)
from .services.messages import message_delete, message_edit, message_send
from .services.reactions import reaction_toggle
from .services.receipts import message_mark_delivered, message_mark_seen
from .state import PRESENCE_HEARTBEAT, get_state
from .throttles import throttle_check
from .ws_inputs import AuthRefreshInput, EmptyInput, SessionJoinInput, SessionRefInput

logger = logging.getLogger(__name__)

TYPING_EXPIRY = 6.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_DEACTIVATED = 4403
CLOSE_TOO_BIG = 1009


ROUTES: dict[str, Route] = {
    "session:join": Route(SessionJoinInput, "on_session_join"),
    "session:leave": Route(SessionRefInput, "on_session_leave"),
    "message:send": Route(MessageSendInput, "on_message_send"),
    "message:edit": Route(MessageEditFrameInput, "on_message_edit"),
    "message:delete": Route(MessageRefInput, "on_message_delete"),
    "message:delivered": Route(MessageRefInput, "on_message_delivered"),
    "message:seen": Route(MessageRefInput, "on_message_seen"),
    "message:reaction": Route(ReactionFrameInput, "on_message_reaction"),
    "typing:start": Route(SessionRefInput, "on_typing_start"),
    "typing:stop": Route(SessionRefInput, "on_typing_stop"),
    "auth:refresh": Route(AuthRefreshInput, "on_auth_refresh"),
    "ping": Route(EmptyInput, "on_ping"),
}


def _now_iso() -> str:
    return iso(timezone.now())


def _render(message) -> dict:
    return MessageSerializer(message).data


@database_sync_to_async
def _user_session_ids(user_id: int) -> list:
    return list(Membership.objects.filter(user_id=user_id).values_list("session_id", flat=True))


@database_sync_to_async
def _touch_last_seen(user) -> str:
    now = timezone.now()
    type(user).objects.filter(pk=user.pk).update(last_seen_at=now)
    return iso(now)


class ChatConsumer(AsyncWebsocketConsumer):
    """One client connection to the chat gateway."""

    routes = ROUTES
    extra_routes = extra_routes

    # --- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Called when the handshake arrives (the origin check has passed)."""
        self.user = self.scope.get("user")
        self.authenticated = False
        self.connection_id = uuid.uuid4().hex
        self.joined: set[uuid.UUID] = set()
        self.typing_timers: dict[uuid.UUID, asyncio.Task] = {}
        self.background: list[asyncio.Task] = []
        self.expiry_task: asyncio.Task | None = None
        await self.accept()
        if self.scope.get("auth_error") or not getattr(self.user, "is_authenticated", False):
            reason = self.scope.get("auth_error") or "Authenticate with a token or a session."
            await self._send_error(None, DomainError("UNAUTHORIZED", reason))
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.authenticated = True
        metrics.WS_CONNECTIONS.inc()
        self.user_data = UserSerializer(self.user).data
        await self.channel_layer.group_add(group_for_user(self.user.pk), self.channel_name)
        became_online = await get_state().presence_connect(self.user.pk, self.connection_id)
        await self._send_frame(
            event_types.CONNECTION_SUCCESS,
            event_types.connection_success(
                user_id=self.user.pk,
                username=self.user.username,
                connection_id=self.connection_id,
                server_time=_now_iso(),
            ),
        )
        for text in await get_state().queue_drain(self.user.pk):
            await self.send(text_data=text)
        if became_online:
            await self._announce_presence("online", None)
        self.background.append(asyncio.create_task(self._heartbeat()))
        self._schedule_expiry(self.scope.get("token_exp"))

    async def disconnect(self, code) -> None:
        """Called when the socket closes, from either side."""
        if not self.authenticated:
            return
        self.authenticated = False
        metrics.WS_CONNECTIONS.dec()
        for task in [*self.background, *self.typing_timers.values(), self.expiry_task]:
            if task is not None:
                task.cancel()
        for session_id in list(self.typing_timers):
            await self._typing_broadcast(session_id, event_types.TYPING_STOP)
        for session_id in list(self.joined):
            await self._leave(session_id)
        await self.channel_layer.group_discard(group_for_user(self.user.pk), self.channel_name)
        if await get_state().presence_disconnect(self.user.pk, self.connection_id):
            await self._announce_presence("offline", await _touch_last_seen(self.user))

    async def dispatch(self, message) -> None:
        # Forwarding an encoded frame touches no database: skip Channels' per-message
        # close_old_connections hop through the shared sync thread (TRAPS, Channels 4.2).
        if message["type"] == FRAME_MESSAGE_TYPE:
            await self.chat_frame(message)
            return
        await super().dispatch(message)

    # --- inbound ---------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """Called with each client frame: parse, route, reply exactly once."""
        if not self.authenticated:
            return
        raw = text_data if text_data is not None else bytes_data
        size = len(raw.encode()) if isinstance(raw, str) else len(raw or b"")
        if size > settings.WS_MAX_FRAME_BYTES:
            await self.close(code=CLOSE_TOO_BIG)
            return
        ref = None
        try:
            event, ref, data = self._parse(raw)
            route = self.routes.get(event) or self.extra_routes.get(event)
            if route is None:
                raise DomainError("UNKNOWN_EVENT", f"Unknown event {event!r}.")
            metrics.WS_EVENTS.labels(event).inc()
            validated = route.serializer(data=data)
            if not validated.is_valid():
                raise validation_error(f"Invalid data for {event}.", validated.errors)
            await throttle_check(
                user_id=self.user.pk,
                event=event,
                session_id=validated.validated_data.get("sessionId"),
            )
            if isinstance(route.handler, str):
                result = await getattr(self, route.handler)(validated.validated_data)
            else:
                result = await route.handler(self, validated.validated_data)
            await self._send_frame("ack", result, ref=ref)
        except DomainError as error:
            await self._send_error(ref, error)
        except Exception:
            logger.exception("unhandled error in %s", self.__class__.__name__)
            await self._send_error(ref, DomainError("INTERNAL", "Something went wrong."))

    @staticmethod
    def _parse(raw) -> tuple[str, object, dict]:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DomainError("BAD_FRAME", "A frame must be JSON text.") from exc
        if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
            raise DomainError("BAD_FRAME", 'A frame is {"event": NAME, "data": {...}, "ref"}.')
        data = frame.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise DomainError("BAD_FRAME", "A frame's data must be an object.")
        return frame["event"], frame.get("ref"), data

    # --- outbound --------------------------------------------------------------------------

    async def _send_frame(self, event: str, data, *, ref=None) -> None:
        frame = {"event": event, "data": data}
        if event in ("ack", "error"):
            frame = {"event": event, "ref": ref, "data": data}
        await self.send(text_data=orjson.dumps(frame).decode())

    async def _send_error(self, ref, error: DomainError) -> None:
        metrics.WS_ERRORS.labels(error.code).inc()
        await self._send_frame("error", error.as_data(), ref=ref)

    async def chat_frame(self, message) -> None:
        """Called with a frame broadcast to a group this socket is in."""
        if message.get("exclude") == self.user.pk:
            return
        await self.send(text_data=message["text"])

    async def user_deactivated(self, message) -> None:
        """Called when staff deactivate (ban) this user: every connection ends at once."""
        await self._send_error(None, DomainError("FORBIDDEN", "This account was deactivated."))
        await self.close(code=CLOSE_DEACTIVATED)

    # --- handlers --------------------------------------------------------------------------

    async def on_session_join(self, data) -> dict:
        session_id = data["sessionId"]
        await database_sync_to_async(session_get_for_member)(user=self.user, session_id=session_id)
        await self.channel_layer.group_add(group_for_session(session_id), self.channel_name)
        snapshot = await database_sync_to_async(session_join_snapshot)(
            user=self.user, session_id=session_id, last_seq=data["lastSeq"]
        )
        if session_id not in self.joined:
            self.joined.add(session_id)
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
        return await database_sync_to_async(self._send_message)(data)

    def _send_message(self, data) -> dict:
        message = message_send(
            author=self.user,
            session_id=data["sessionId"],
            content=data["content"],
            parent_id=data["parentMessageId"],
            client_id=data["clientId"],
        )
        return _render(message)

    async def on_message_edit(self, data) -> dict:
        return await database_sync_to_async(self._edit_message)(data)

    def _edit_message(self, data) -> dict:
        return _render(
            message_edit(user=self.user, message_id=data["messageId"], content=data["content"])
        )

    async def on_message_delete(self, data) -> dict:
        message = await database_sync_to_async(message_delete)(
            user=self.user, message_id=data["messageId"]
        )
        return {"sessionId": str(message.session_id), "messageId": str(message.pk)}

    async def on_message_delivered(self, data) -> dict:
        return await database_sync_to_async(message_mark_delivered)(
            user=self.user, message_id=data["messageId"]
        )

    async def on_message_seen(self, data) -> dict:
        return await database_sync_to_async(message_mark_seen)(
            user=self.user, message_id=data["messageId"]
        )

    async def on_message_reaction(self, data) -> dict:
        return await database_sync_to_async(reaction_toggle)(
            user=self.user, message_id=data["messageId"], emoji=data["emoji"]
        )

    async def on_typing_start(self, data) -> dict:
        session_id = self._require_joined(data["sessionId"])
        previous = self.typing_timers.pop(session_id, None)
        if previous is not None:
            previous.cancel()
        self.typing_timers[session_id] = asyncio.create_task(self._typing_expiry(session_id))
        await self._typing_broadcast(session_id, event_types.TYPING_START)
        return {"sessionId": str(session_id)}

    async def on_typing_stop(self, data) -> dict:
        session_id = self._require_joined(data["sessionId"])
        timer = self.typing_timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()
            await self._typing_broadcast(session_id, event_types.TYPING_STOP)
        return {"sessionId": str(session_id)}

    async def on_auth_refresh(self, data) -> dict:
        try:
            user, expires = await user_for_token(data["token"])
        except TokenError as exc:
            raise DomainError("UNAUTHORIZED", f"The token can't be used: {exc}") from exc
        if user.pk != self.user.pk:
            raise DomainError("FORBIDDEN", "The token belongs to another user.")
        self._schedule_expiry(expires)
        return {"expiresAt": iso(datetime.fromtimestamp(expires, tz=UTC))}

    async def on_ping(self, data) -> dict:
        return {"serverTime": _now_iso()}

    # --- helpers ---------------------------------------------------------------------------

    def _require_joined(self, session_id):
        if session_id not in self.joined:
            raise DomainError("FORBIDDEN", "Join the session (session:join) first.")
        return session_id

    async def _leave(self, session_id) -> None:
        self.joined.discard(session_id)
        timer = self.typing_timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()
            await self._typing_broadcast(session_id, event_types.TYPING_STOP)
        await self.channel_layer.group_discard(group_for_session(session_id), self.channel_name)
        await broadcast_async(
            group_for_session(session_id),
            {
                "event": event_types.USER_LEFT,
                "data": event_types.user_left(session_id=session_id, user=self.user_data),
            },
        )

    async def _typing_broadcast(self, session_id, event: str) -> None:
        data = event_types.typing(session_id=session_id, user=self.user_data)
        await broadcast_async(
            group_for_session(session_id),
            {"event": event, "data": data},
            exclude_user=self.user.pk,
        )

    async def _typing_expiry(self, session_id) -> None:
        await asyncio.sleep(TYPING_EXPIRY)
        if self.typing_timers.get(session_id) is asyncio.current_task():
            del self.typing_timers[session_id]
            await self._typing_broadcast(session_id, event_types.TYPING_STOP)

    async def _announce_presence(self, status: str, last_seen_at: str | None) -> None:
        frame = {
            "event": event_types.PRESENCE_UPDATE,
            "data": event_types.presence_update(
                user=self.user_data, status=status, last_seen_at=last_seen_at
            ),
        }
        for session_id in await _user_session_ids(self.user.pk):
            await broadcast_async(group_for_session(session_id), frame)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_HEARTBEAT)
            try:
                await get_state().presence_refresh(self.user.pk, self.connection_id)
            except Exception:
                logger.warning("presence refresh failed", exc_info=True)

    def _schedule_expiry(self, expires: int | None) -> None:
        if self.expiry_task is not None:
            self.expiry_task.cancel()
            self.expiry_task = None
        if expires is not None:
            self.expiry_task = asyncio.create_task(self._expire_at(expires))

    async def _expire_at(self, expires: int) -> None:
        await asyncio.sleep(max(0.0, expires - time.time()))
        await self._send_error(None, DomainError("UNAUTHORIZED", "The access token expired."))
        await self.close(code=CLOSE_UNAUTHORIZED)
