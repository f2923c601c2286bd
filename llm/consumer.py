"""The ``/ws/ai/`` gateway (CONTRACT section 4): one user and the assistant.

Same auth, envelope, throttles and errors as ``/ws/chat/`` (``chat.gateway_base``). A
conversation is a session whose only member is the caller; ``chat:start`` (seed 001) makes
one when no ``conversationId`` is given, and ``prompt`` (seed 000) continues one (``thread``).
Either way the answer is a room stream in that session (``stream_request``): the prompt and
the answer are saved as in a room, the conversation's history is the context, and a relay
(``llm.ai_relay``) sends the answer to this socket in the protocol's own frames. The model is
told it talks with one person (``llm.system_prompts.ONE_TO_ONE``) unless the conversation has
an agent with a system prompt of its own. One answer at a time per connection; ``chat:stop``
stops it.

Every client frame still gets its ``ack`` or ``error`` reply with its ``ref``. A refused
``chat:start`` also gets ``chat:error`` {message, code} (seed 001's clients listen for it); a
refused ``prompt``'s ``error`` reply also carries seed 000's ``status_code``.
"""

from __future__ import annotations

import logging
import uuid

from channels.db import database_sync_to_async

from chat.extensions import Route
from chat.gateway_base import GatewayConsumer
from chat.ws_inputs import AuthRefreshInput, EmptyInput
from chatproject.errors import DomainError

from . import ai_events
from .ai_relay import ChatRelay, PromptRelay, Relay
from .inputs import ChatStartInput, ChatStopInput, PromptInput, model_settings
from .selectors import conversation_get_for_owner
from .services.assistant_access import assistant_start_check
from .services.conversations import conversation_create, conversation_discard
from .services.streams import stream_request, stream_stop

logger = logging.getLogger(__name__)

# An LLM request spends the same per-user budget (stream:request) whichever door asks.
LLM_REQUESTS = ("chat:start", "prompt")

ROUTES: dict[str, Route] = {
    "chat:start": Route(ChatStartInput, "on_chat_start"),
    "chat:stop": Route(ChatStopInput, "on_chat_stop"),
    "prompt": Route(PromptInput, "on_prompt"),
    "auth:refresh": Route(AuthRefreshInput, "on_auth_refresh"),
    "ping": Route(EmptyInput, "on_ping"),
}


def _conversation_for(*, user, conversation_id, message: str) -> tuple[uuid.UUID, bool]:
    """The conversation to answer in, and whether it was made now."""
    if conversation_id is not None:
        return conversation_get_for_owner(user=user, conversation_id=conversation_id).pk, False
    return conversation_create(user=user, first_message=message).pk, True


class AiConsumer(GatewayConsumer):
    """One client connection to the assistant."""

    routes = ROUTES

    async def connect(self) -> None:
        """Called when the handshake arrives."""
        self.current: Relay | None = None
        await super().connect()

    async def closed(self) -> None:
        """Called when the connection ends: the answer goes on and is saved, unseen."""
        if self.current is not None:
            self.current.detached = True

    def throttle_event(self, event: str) -> str:
        return "stream:request" if event in LLM_REQUESTS else event

    async def reply_error(self, event, ref, error: DomainError) -> None:
        if event == "prompt":
            await self._send_error(ref, error, status_code=ai_events.status_code(error.code))
            return
        await self._send_error(ref, error)
        if event == "chat:start":
            await self.send_event(
                ai_events.CHAT_ERROR, ai_events.chat_error(message=error.message, code=error.code)
            )

    # --- what relays call -------------------------------------------------------------------

    async def send_event(self, event: str, data) -> None:
        try:
            await self._send_frame(event, data)
        except Exception:
            logger.info("the /ws/ai/ socket is gone; the answer goes on unseen", exc_info=True)
            if self.current is not None:
                self.current.detached = True

    def answer_ended(self, relay: Relay) -> None:
        """Called by a relay when its answer has ended: the next one may start."""
        if self.current is relay:
            self.current = None

    # --- handlers ---------------------------------------------------------------------------

    async def on_chat_start(self, data) -> dict:
        assistant_start_check(self.user)
        self._one_at_a_time()
        conversation_id, created = await database_sync_to_async(_conversation_for)(
            user=self.user, conversation_id=data["conversationId"], message=data["message"]
        )
        relay = ChatRelay(self, conversation_id=conversation_id, created=created)
        try:
            started = await self._start(relay, data["message"], model_settings(data))
        except BaseException:
            if created:
                await database_sync_to_async(conversation_discard)(
                    user=self.user, conversation_id=conversation_id
                )
            raise
        return {"conversationId": str(conversation_id), **started}

    async def on_prompt(self, data) -> dict:
        assistant_start_check(self.user)
        self._one_at_a_time()
        conversation = await database_sync_to_async(conversation_get_for_owner)(
            user=self.user, conversation_id=data["thread"]
        )
        relay = PromptRelay(self, conversation_id=conversation.pk)
        started = await self._start(relay, data["message"]["content"], model_settings(data))
        return {"thread": str(conversation.pk), **started}

    async def on_chat_stop(self, data) -> dict:
        relay = self.current
        wanted = data["conversationId"]
        if relay is None or (wanted is not None and wanted != relay.conversation_id):
            return {"stopRequested": False}
        stopped = await stream_stop(user=self.user, stream_id=relay.stream_id)
        return {
            "conversationId": str(relay.conversation_id),
            "streamId": relay.stream_id,
            "stopRequested": stopped["stopRequested"],
        }

    # --- helpers ----------------------------------------------------------------------------

    def _one_at_a_time(self) -> None:
        if self.current is not None:
            raise DomainError(
                "STREAM_LIMIT",
                "An answer is being written on this connection: wait for it, or stop it "
                "(chat:stop).",
            )

    async def _start(self, relay: Relay, prompt: str, config: dict) -> dict:
        """Start the answer as a stream of the conversation, relayed to this socket."""
        self.current = relay
        try:
            started = await stream_request(
                user=self.user,
                session_id=relay.conversation_id,
                prompt=prompt,
                config=config,
                observer=relay,
                one_to_one=True,
            )
        except BaseException:
            self.current = None
            raise
        relay.stream_id = started["streamId"]
        return started
