"""What every WebSocket door of the platform shares (``/ws/chat/``, ``/ws/ai/``): auth at the
handshake, the frame envelope, the route table, throttles, errors, token lifetime and bans.

A ``GatewayConsumer`` is a Channels ``AsyncWebsocketConsumer`` run as Channels runs it: one
message at a time, from the socket or the channel layer. While a client frame is handled,
a broadcast for this socket waits, so everything a request causes (a session's frames after
a ``session:join``) reaches the client after the request's reply. A route marked
``concurrent`` (``message:send``: its handler mostly waits for the database) runs as a task
of its own instead, and the door keeps that order itself (``ChatConsumer.chat_frame`` holds
the sender's own ``message:new`` until the ack). The handshake has been checked by then:
origin (``chatproject.origins``) and credentials (``accounts.middleware``), found in
``scope``.

An idle connection keeps its token lifetime and presence as entries in the worker's timer
service (``chat.timers``), not tasks of its own.

A door subclasses ``GatewayConsumer`` with its own ``routes`` (event name -> input serializer
and handler) and hooks (``opened``, ``closed``). Every client frame gets exactly one reply
echoing its ``ref``: ``ack`` with the handler's result, or ``error`` with a contract code. A
bad frame never closes the socket; only a frame over 64 KiB does (1009). A user's new
connections are limited across workers (``chat.throttles``): one too many gets
RATE_LIMITED and close 4429.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from functools import cached_property

import orjson
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError

from accounts.auth import user_for_token
from accounts.middleware import AUTH_ERROR, BOT_TOKEN_ID, TOKEN_EXP
from accounts.serializers import render_user
from chatproject import metrics
from chatproject.errors import DomainError, outage_error, validation_error
from chatproject.json_depth import TOO_DEEP_MESSAGE, nested_too_deep

# 4503: the database or Redis can't be reached, come back in a moment.
from chatproject.ws_outage import CLOSE_UNAVAILABLE

from . import event_types
from .broadcaster import bind_loop
from .events import group_for_user
from .extensions import Route
from .frame_size import frame_fits, frame_max_bytes
from .serializers import iso
from .throttles import connection_check, throttle_check
from .timers import connection_timers
from .windows import FixedWindows

logger = logging.getLogger(__name__)

# What the servers raise for a send on a connection that is already closed: daphne's
# autobahn ``Disconnected``, uvicorn's ``ClientDisconnected`` / websockets' ``ConnectionClosed``.
_CLOSED_SOCKET_ERRORS = frozenset(
    {"Disconnected", "ClientDisconnected", "ConnectionClosed", "ConnectionClosedOK",
     "ConnectionClosedError"}
)  # fmt: skip

_SOCKET_HANDLERS = {
    "websocket.connect": "websocket_connect",
    "websocket.receive": "websocket_receive",
    "websocket.disconnect": "websocket_disconnect",
}

CLOSE_UNAUTHORIZED = 4401
CLOSE_DEACTIVATED = 4403
CLOSE_TOO_BIG = 1009
# Too many new connections of one user: come back after the error's retryAfter.
CLOSE_RATE_LIMITED = 4429


def now_iso() -> str:
    return iso(timezone.now())


class GatewayConsumer(AsyncWebsocketConsumer):
    """One authenticated client connection speaking the ``{event, data, ref}`` envelope."""

    routes: dict[str, Route] = {}
    extra_routes: dict[str, Route] = {}
    # Channels' consumers make a list per instance unless a class names its groups; the
    # groups a socket is in are joined by hand here.
    groups = ()
    # Until the handshake's credentials are accepted (``connect``).
    authenticated = False
    # The reply tasks of ``concurrent`` routes still running; replaced, never changed in
    # place, while empty (most connections never have one).
    replies_pending: set = frozenset()

    # --- lifecycle -------------------------------------------------------------------------

    async def dispatch(self, message) -> None:
        """Channels' dispatch, one message at a time from the socket and the channel layer.

        Opening, client frames and closing reach the database only through
        ``database_sync_to_async``, which closes stale connections itself: they skip
        Channels' per-message ``aclose_old_connections`` hop through the shared sync thread
        (TRAPS, Channels 4.2), which for a client frame queued in that one thread ahead of
        the frame's own work.

        A channel-layer handler that meets a database or Redis outage ends the connection
        with an ``error`` frame and close 4503, as a client frame's outage is answered."""
        handler = _SOCKET_HANDLERS.get(message["type"])
        if handler is not None:
            await getattr(self, handler)(message)
            return
        try:
            await super().dispatch(message)
        except Exception as exc:
            if (outage := outage_error(exc)) is None:
                raise
            logger.warning("connection ended: %s (%s: %s)", outage.message,
                           type(exc).__name__, exc)  # fmt: skip
            await self._send_error(None, outage)
            await self.close(code=CLOSE_UNAVAILABLE)

    async def connect(self) -> None:
        """Called when the handshake arrives, past the origin check and the auth middleware
        (``accounts.middleware``), which put the user, the token's expiry and any reason
        the token was refused in the scope."""
        # Sync code this connection's handlers call (a service committing a write) hands
        # its broadcasts to this event loop (``chat.broadcaster``).
        bind_loop()
        self.user = self.scope["user"]
        self.authenticated = False
        self.connection_id = uuid.uuid4().hex
        await self.accept()
        auth_error = self.scope.get(AUTH_ERROR)
        if auth_error or not self.user.is_authenticated:
            reason = auth_error or "Authenticate with a token or a session."
            await self._send_error(None, DomainError("UNAUTHORIZED", reason))
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        try:
            await connection_check(user_id=self.user.pk)
        except DomainError as error:
            await self._send_error(None, error)
            await self.close(code=CLOSE_RATE_LIMITED)
            return
        self.authenticated = True
        metrics.WS_CONNECTIONS.inc()
        # However the consumer ends (a handler's error, the server cancelling a consumer
        # slow to close), this connection leaves the worker's timers: a forgotten entry
        # would keep its user online.
        timers, connection_id = connection_timers(), self.connection_id
        asyncio.current_task().add_done_callback(lambda _task: timers.forget(connection_id))
        try:
            # The user's group carries bans (``user.deactivated``) to every door.
            await self.channel_layer.group_add(group_for_user(self.user.pk), self.channel_name)
            await self.opened()
        except Exception as exc:
            outage = outage_error(exc)
            if outage is None:
                raise
            # Not a socket that would silently miss its user's events: say so and close.
            logger.warning("connection refused: %s (%s)", outage.message, exc)
            await self._send_error(None, outage)
            await self.close(code=CLOSE_UNAVAILABLE)
            return
        self._schedule_expiry(self.scope.get(TOKEN_EXP))

    async def opened(self) -> None:
        """Called once an authenticated connection is accepted: the first frame goes out."""
        await self.send_connection_success()

    async def disconnect(self, code) -> None:
        """Called when the socket closes, from either side."""
        if not self.authenticated:
            return
        self.authenticated = False
        metrics.WS_CONNECTIONS.dec()
        connection_timers().forget(self.connection_id)
        try:
            await self.closed()
            await self.channel_layer.group_discard(group_for_user(self.user.pk), self.channel_name)
        except Exception as exc:
            if (outage := outage_error(exc)) is None:
                raise
            # The socket is gone: nobody to tell. Presence entries expire on their own, and
            # a gone channel's group memberships deliver to nobody.
            logger.warning("cleanup after a closed connection failed: %s (%s: %s)",
                           outage.message, type(exc).__name__, exc)  # fmt: skip

    async def closed(self) -> None:
        """Called when an authenticated connection ends, before it leaves the user's group."""

    @cached_property
    def throttle_windows(self) -> FixedWindows:
        """The counts of the limits that hold per connection (``session:join``), made when
        first needed."""
        return FixedWindows()

    @cached_property
    def user_data(self) -> dict:
        """The user as frames show it. Made when first needed, as a plain dict: most
        connections never need it."""
        return render_user(self.user)

    async def send_connection_success(self) -> None:
        await self._send_frame(
            event_types.CONNECTION_SUCCESS,
            event_types.connection_success(
                user_id=self.user.pk,
                username=self.user.username,
                connection_id=self.connection_id,
                server_time=now_iso(),
            ),
        )

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
        event, ref = None, None
        try:
            event, ref, data = self._parse(raw)
            route = self.routes.get(event) or self.extra_routes.get(event)
            if route is None:
                raise DomainError("UNKNOWN_EVENT", f"Unknown event {event!r}.")
            metrics.WS_EVENTS.labels(event).inc()
            validated = route.serializer(data=data)
            if not validated.is_valid():
                raise validation_error(f"Invalid data for {event}.", validated.errors)
            if not self.throttle_exempt(event, validated.validated_data):
                await throttle_check(
                    user_id=self.user.pk,
                    event=route.throttle or self.throttle_event(event),
                    session_id=validated.validated_data.get("sessionId"),
                    connection=self.throttle_windows,
                )
            if isinstance(route.handler, str):
                call = getattr(self, route.handler)(validated.validated_data)
            else:
                call = route.handler(self, validated.validated_data)
            if route.concurrent:
                self._keep(asyncio.create_task(self._reply_when_done(event, ref, call)))
                return
            result = await call
            await self._send_frame("ack", result, ref=ref)
        except Exception as exc:
            await self._reply_failure(event, ref, exc)

    def _keep(self, task: asyncio.Task) -> None:
        # The loop keeps only weak references to tasks.
        if not self.replies_pending:
            self.replies_pending = set()
        self.replies_pending.add(task)
        task.add_done_callback(self.replies_pending.discard)

    async def _reply_when_done(self, event: str, ref, call) -> None:
        try:
            result = await call
            await self._send_frame("ack", result, ref=ref)
        except Exception as exc:
            await self._reply_failure(event, ref, exc)
        finally:
            await self.replied(event)

    async def replied(self, event: str) -> None:
        """Called when the reply to a client frame of a ``concurrent`` route has gone out
        (an ``ack`` or an ``error``)."""

    async def _reply_failure(self, event: str | None, ref, exc: Exception) -> None:
        if isinstance(exc, DomainError):
            await self.reply_error(event, ref, exc)
            return
        if (outage := outage_error(exc)) is not None:
            logger.warning("%s refused: %s (%s: %s)", event, outage.message,
                           type(exc).__name__, exc)  # fmt: skip
            await self.reply_error(event, ref, outage)
            return
        logger.error("unhandled error in %s", self.__class__.__name__, exc_info=exc)
        await self.reply_error(event, ref, DomainError("INTERNAL", "Something went wrong."))

    def throttle_event(self, event: str) -> str:
        """The throttle rule and budget an event counts against: its own, unless a door
        makes several events share one (an LLM request is one whichever door asks)."""
        return event

    def throttle_exempt(self, event: str, data: dict) -> bool:
        """Called before a valid frame is counted against its limit: True for a frame that
        continues a reply the server asked the client to continue, which the limit is not
        for."""
        return False

    async def reply_error(self, event: str | None, ref, error: DomainError) -> None:
        """Called when a client frame is refused: the ``error`` reply echoing its ``ref``
        (``event`` is None when the frame could not be parsed)."""
        await self._send_error(ref, error)

    @staticmethod
    def _parse(raw) -> tuple[str, object, dict]:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DomainError("BAD_FRAME", "A frame must be JSON text.") from exc
        if nested_too_deep(frame):
            raise DomainError("BAD_FRAME", TOO_DEEP_MESSAGE)
        if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
            raise DomainError("BAD_FRAME", 'A frame is {"event": NAME, "data": {...}, "ref"}.')
        data = frame.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise DomainError("BAD_FRAME", "A frame's data must be an object.")
        return frame["event"], frame.get("ref"), data

    # --- outbound --------------------------------------------------------------------------

    async def send(self, text_data=None, bytes_data=None, close=False) -> bool:
        """Send to the client, unless its connection is already gone or the frame is over
        the frame cap; whether it went out.

        A frame broadcast to a socket whose client just vanished (a network cut) would
        otherwise raise out of the consumer and kill it before it handles
        ``websocket.disconnect``, so presence and group cleanup would never run. The
        disconnect arrives right after. A frame over the cap would make the server close
        the socket (1011): it is left out, with one log line, and the socket stays open."""
        if text_data is not None and not frame_fits(text_data):
            logger.warning("a %d-character frame is over the %d-byte frame cap: not sent "
                           "(connection %s)", len(text_data), frame_max_bytes(),
                           self.connection_id)  # fmt: skip
            return False
        return await self.send_fitting(text_data=text_data, bytes_data=bytes_data, close=close)

    async def send_fitting(self, text_data=None, bytes_data=None, close=False) -> bool:
        """``send`` for a frame just checked against the cap: not measured twice."""
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        except Exception as exc:
            if type(exc).__name__ not in _CLOSED_SOCKET_ERRORS:
                raise
            logger.debug("dropped a frame for a closed socket (%s)", type(exc).__name__)
            return False
        return True

    async def _send_frame(self, event: str, data, *, ref=None) -> bool:
        frame = {"event": event, "data": data}
        if event in ("ack", "error"):
            frame = {"event": event, "ref": ref, "data": data}
        text = orjson.dumps(frame).decode()
        if event == "ack" and not frame_fits(text):
            # Every gathering reply takes what fits (``chat.join``): this is a bug to fix,
            # answered as one rather than left without a reply.
            logger.error("the ack of a %d-character reply is over the frame cap", len(text))
            error = DomainError("INTERNAL", "The reply would be larger than a frame can be.")
            return await self._send_frame("error", error.as_data(), ref=ref)
        if event == "ack":
            return await self.send_fitting(text_data=text)
        return await self.send(text_data=text)

    async def _send_error(self, ref, error: DomainError, **extra) -> None:
        metrics.WS_ERRORS.labels(error.code).inc()
        await self._send_frame("error", {**error.as_data(), **extra}, ref=ref)

    async def session_removed(self, message) -> None:
        """Called when this user was removed from a session (``sessionId``): a door that
        follows sessions stops following it."""

    async def user_deactivated(self, message) -> None:
        """Called when staff deactivate (ban) this user: every connection ends at once."""
        await self._send_error(None, DomainError("FORBIDDEN", "This account was deactivated."))
        await self.close(code=CLOSE_DEACTIVATED)

    async def bot_token_revoked(self, message) -> None:
        """Called when one of this bot's tokens was deleted (``tokenId``): a socket opened
        with it ends at once; the bot's other sockets stay."""
        if self.scope.get(BOT_TOKEN_ID) != message["tokenId"]:
            return
        await self._send_error(None, DomainError("UNAUTHORIZED", "This bot token was revoked."))
        await self.close(code=CLOSE_UNAUTHORIZED)

    # --- handlers every door has -----------------------------------------------------------

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
        return {"serverTime": now_iso()}

    # --- token lifetime --------------------------------------------------------------------

    def _schedule_expiry(self, expires: int | None) -> None:
        connection_timers().expire_at(self.connection_id, self, expires)

    async def token_expired(self) -> None:
        """Called by the worker's timers when the access token expired with no
        ``auth:refresh`` before it."""
        await self._send_error(None, DomainError("UNAUTHORIZED", "The access token expired."))
        await self.close(code=CLOSE_UNAUTHORIZED)
