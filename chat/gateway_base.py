"""What every WebSocket door of the platform shares (``/ws/chat/``, ``/ws/ai/``): auth at the
handshake, the frame envelope, the route table, throttles, errors, token lifetime and bans.

An idle connection is kept as small as it can be, as a worker holds thousands (docs/
benchmarks.md, "Idle connections"): its token lifetime and presence are entries in the
worker's timer service (``chat.timers``), not tasks of its own, and it runs one task besides
the server's (``__call__``).

A door subclasses ``GatewayConsumer`` with its own ``routes`` (event name -> input serializer
and handler) and hooks (``opened``, ``closed``). Every client frame gets exactly one reply
echoing its ``ref``: ``ack`` with the handler's result, or ``error`` with a contract code. A
bad frame never closes the socket; only a frame over 64 KiB does (1009).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import uuid
from datetime import UTC, datetime
from functools import cached_property

import orjson
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError

from accounts.auth import Credentials, user_for_token
from accounts.serializers import render_user
from chatproject import metrics
from chatproject.daphne_wire import Wire
from chatproject.errors import DomainError, outage_error, validation_error

# 4503: the database or Redis can't be reached, come back in a moment.
from chatproject.ws_outage import CLOSE_UNAVAILABLE, refuse_unavailable

from . import event_types
from .events import group_for_user
from .extensions import Route
from .serializers import iso
from .throttles import throttle_check
from .timers import connection_timers

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


def now_iso() -> str:
    return iso(timezone.now())


class GatewayConsumer(AsyncWebsocketConsumer):
    """One authenticated client connection speaking the ``{event, data, ref}`` envelope."""

    routes: dict[str, Route] = {}
    extra_routes: dict[str, Route] = {}
    # Channels' consumers make a list per instance unless a class names its groups; the
    # groups a socket is in are joined by hand here.
    groups = ()
    # Who the handshake authenticated: set by ``chatproject.entry`` before the consumer runs.
    credentials: Credentials = Credentials(AnonymousUser())
    # The task dispatching the channel layer's messages, while there is one, and what ended
    # the consumer from that side, if anything.
    _from_layer: asyncio.Task | None = None
    _layer_failure: BaseException | None = None
    # Daphne's socket under this connection (``chatproject.daphne_wire``), if it runs there.
    _wire: Wire | None = None
    # Client events during whose handling broadcast frames wait (``_layer_direct``), and
    # whether the client frame being handled now lets them pass.
    frames_wait_for: frozenset[str] = frozenset()
    _frames_pass = False

    # --- lifecycle -------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        """Channels' ``AsyncConsumer.__call__``, lighter per connection: the socket's
        messages are read in the application's own task, and the channel layer's are
        dispatched in turn with them (one message at a time, as in Channels), where Channels
        keeps two reader tasks and an ``asyncio.wait`` per connection. A layer that can call
        back as messages arrive (``listen``, ``chatproject.pubsub_layer``) gets a task only
        while it has messages to dispatch; any other is read by a task of its own.

        A backend outage that ends the consumer (the channel layer can't subscribe the
        socket's channel, a handler reaches a database that is down) is answered with an
        ``error`` frame and close 4503, never an HTTP 500 or a silent 1011."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        try:
            self.channel_name = await self.channel_layer.new_channel()
        except Exception as exc:
            if (outage := outage_error(exc)) is None:
                raise
            await refuse_unavailable(send, outage, exc)
            return
        self._turn = asyncio.Lock()
        self._task = asyncio.current_task()
        pushed = hasattr(self.channel_layer, "listen")
        if pushed:
            # The layer calls back from its own reader task: dispatch in this one's context.
            self._context = contextvars.copy_context()
            self._wire = Wire.of(send)
            direct = self._layer_direct if self._wire is not None else None
            self.channel_layer.listen(self.channel_name, self._layer_ready, direct)
        else:
            self._from_layer = asyncio.create_task(self._read_layer())
        try:
            try:
                while True:
                    message = await receive()
                    async with self._turn:
                        await self.dispatch(message)
            except StopConsumer:
                pass
            except asyncio.CancelledError:
                if self._layer_failure is None:
                    raise
                if not isinstance(self._layer_failure, StopConsumer):
                    raise self._layer_failure from None
        except Exception as exc:
            if (outage := outage_error(exc)) is None:
                raise
            # Accepted by now (``connect`` accepts first); on a socket already closed
            # these sends are dropped.
            logger.warning("connection ended: %s (%s: %s)", outage.message,
                           type(exc).__name__, exc)  # fmt: skip
            await self._send_error(None, outage)
            await self.close(code=CLOSE_UNAVAILABLE)
        finally:
            if pushed:
                # First, so that no message arriving from now on starts a task again.
                await self.channel_layer.discard_channel(self.channel_name)
            if self._from_layer is not None:
                self._from_layer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._from_layer
            # Also when ``disconnect`` never ran (the server killed a consumer slow to close,
            # an error escaped a handler): a forgotten entry would keep its user online.
            if (connection_id := getattr(self, "connection_id", None)) is not None:
                connection_timers().forget(connection_id)

    def _layer_ready(self) -> None:
        """Called by a listening channel layer when a message arrived for this socket."""
        if self._from_layer is None and self._layer_failure is None:
            self._from_layer = asyncio.get_running_loop().create_task(
                self._drain_layer(), context=self._context
            )

    def _layer_direct(self, message) -> bool:
        """Offered a group message by a listening channel layer before it is queued: True
        if ``write_now`` wrote it to the socket there and then. Never ahead of a layer
        message waiting or being dispatched, so layer messages keep their order; nor while
        the socket is opening or closing, or while a client frame in ``frames_wait_for``
        is handled (a ``session:join``, whose reply the session's frames must follow).
        While any other client frame is handled (a send waiting for the database, say) a
        frame goes out at once rather than after that frame's reply."""
        if self._from_layer is not None or self._layer_failure is not None:
            return False
        if self._turn.locked() and not self._frames_pass:
            return False
        return self.write_now(message)

    def write_now(self, message) -> bool:
        """Deal with a channel-layer message by writing to ``self._wire`` alone, with no
        await, and return True; or return False to have it dispatched as usual. Consumers
        that forward broadcast frames say how."""
        return False

    async def _drain_layer(self) -> None:
        """Dispatch the messages waiting in a listening channel layer, then end."""
        while (message := self.channel_layer.receive_nowait(self.channel_name)) is not None:
            if not await self._dispatch_from_layer(message):
                return
        # Nothing awaited since the layer said it is empty: no message can have come in
        # between, and the next one starts a task again.
        self._from_layer = None

    async def _read_layer(self) -> None:
        """Dispatch the channel layer's messages as they come, for as long as the consumer
        runs."""
        while True:
            message = await self.channel_layer.receive(self.channel_name)
            if not await self._dispatch_from_layer(message):
                return

    async def _dispatch_from_layer(self, message) -> bool:
        """Dispatch one channel-layer message; False if that ended the consumer. A handler's
        failure ends it as in Channels: the task reading the socket is cancelled and raises
        it."""
        async with self._turn:
            try:
                await self.dispatch(message)
            except BaseException as exc:
                self._layer_failure = exc
                self._task.cancel()
                return False
        return True

    async def dispatch(self, message) -> None:
        # Opening, client frames and closing reach the database only through
        # ``database_sync_to_async``, which closes stale connections itself: skip Channels'
        # per-message close_old_connections hop through the shared sync thread (TRAPS,
        # Channels 4.2). For a client frame that hop queued in that one thread ahead of the
        # frame's own work, a second hop per ``message:send``; for opening it would also
        # leave a context variable of asgiref's in every connection's context for its life.
        handler = _SOCKET_HANDLERS.get(message["type"])
        if handler is not None:
            await getattr(self, handler)(message)
            return
        await super().dispatch(message)

    async def connect(self) -> None:
        """Called when the handshake arrives (the origin check has passed)."""
        self.user = self.credentials.user
        self.authenticated = False
        self.connection_id = uuid.uuid4().hex
        await self.accept()
        if self.credentials.error or not getattr(self.user, "is_authenticated", False):
            reason = self.credentials.error or "Authenticate with a token or a session."
            await self._send_error(None, DomainError("UNAUTHORIZED", reason))
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.authenticated = True
        metrics.WS_CONNECTIONS.inc()
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
        self._schedule_expiry(self.credentials.token_exp)

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
        await self.closed()
        await self.channel_layer.group_discard(group_for_user(self.user.pk), self.channel_name)

    async def closed(self) -> None:
        """Called when an authenticated connection ends, before it leaves the user's group."""

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
            self._frames_pass = event not in self.frames_wait_for
            metrics.WS_EVENTS.labels(event).inc()
            validated = route.serializer(data=data)
            if not validated.is_valid():
                raise validation_error(f"Invalid data for {event}.", validated.errors)
            await throttle_check(
                user_id=self.user.pk,
                event=self.throttle_event(event),
                session_id=validated.validated_data.get("sessionId"),
            )
            if isinstance(route.handler, str):
                result = await getattr(self, route.handler)(validated.validated_data)
            else:
                result = await route.handler(self, validated.validated_data)
            await self._send_frame("ack", result, ref=ref)
        except DomainError as error:
            await self.reply_error(event, ref, error)
        except Exception as exc:
            if (outage := outage_error(exc)) is not None:
                logger.warning("%s refused: %s (%s: %s)", event, outage.message,
                               type(exc).__name__, exc)  # fmt: skip
                await self.reply_error(event, ref, outage)
                return
            logger.exception("unhandled error in %s", self.__class__.__name__)
            await self.reply_error(event, ref, DomainError("INTERNAL", "Something went wrong."))
        finally:
            self._frames_pass = False

    def throttle_event(self, event: str) -> str:
        """The throttle rule and budget an event counts against: its own, unless a door
        makes several events share one (an LLM request is one whichever door asks)."""
        return event

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
        if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
            raise DomainError("BAD_FRAME", 'A frame is {"event": NAME, "data": {...}, "ref"}.')
        data = frame.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise DomainError("BAD_FRAME", "A frame's data must be an object.")
        return frame["event"], frame.get("ref"), data

    # --- outbound --------------------------------------------------------------------------

    async def send(self, text_data=None, bytes_data=None, close=False) -> None:
        """Send to the client, unless its connection is already gone. A frame broadcast to
        a socket whose client just vanished (a network cut) would otherwise raise out of
        the consumer and kill it before it handles ``websocket.disconnect``, so presence
        and group cleanup would never run. The disconnect arrives right after."""
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        except Exception as exc:
            if type(exc).__name__ not in _CLOSED_SOCKET_ERRORS:
                raise
            logger.debug("dropped a frame for a closed socket (%s)", type(exc).__name__)

    async def _send_frame(self, event: str, data, *, ref=None) -> None:
        frame = {"event": event, "data": data}
        if event in ("ack", "error"):
            frame = {"event": event, "ref": ref, "data": data}
        await self.send(text_data=orjson.dumps(frame).decode())

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
