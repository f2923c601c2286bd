"""Saving an answer streamed over ``POST /api/stream`` into a session (its ``chatId``).

Through the chat services, as a room saves it: the user's message (``message:new``), an
empty assistant message when the answer starts, and its text and outcome when it ends
(``message:edited``); nothing in between (TRAPS: no write per chunk). Saving is
best-effort: seed 003's promise is that a database error is logged and never breaks the
stream, so every write here catches its own failure. A refusal the client can act on (the
content filter's ``CONTENT_REJECTED``) is not a database error and still refuses the request.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from chat.services.assistant import assistant_message_create, assistant_message_finish
from chat.services.messages import message_prepare, message_store_one
from chatproject.errors import DomainError

from ..stream_events import StreamEnd

logger = logging.getLogger(__name__)


@dataclass
class AnswerRecord:
    """Where an answer is saved, and the assistant message once it exists."""

    user: object
    session_id: uuid.UUID
    agent_id: uuid.UUID | None
    model: str
    message_id: uuid.UUID | None = None
    user_message_id: uuid.UUID | None = None

    def start(self, *, prompt: str) -> None:
        """Save the prompt and the empty answer. Sync (database); DomainError passes."""
        try:
            # Not ``message_send``: this prompt has its answer here, so the listeners of
            # people's messages (an ``@assistant`` in it) must not start another.
            question = message_prepare(author=self.user, session_id=self.session_id, content=prompt)
            self.user_message_id = message_store_one(question, author=self.user).pk
        except DomainError:
            raise
        except Exception:
            logger.exception("saving the prompt in session %s failed", self.session_id)
        self.message_id = self._create_answer()

    def _create_answer(self) -> uuid.UUID | None:
        try:
            return assistant_message_create(
                session_id=self.session_id,
                agent_id=self.agent_id,
                metadata={"status": "streaming", "model": self.model},
            ).pk
        except Exception:
            logger.exception("saving the answer's message in session %s failed", self.session_id)
            return None

    def finish(
        self,
        *,
        ending: StreamEnd,
        status: str,
        finish_reason: str,
        error_code: str = "",
        error_message: str = "",
    ) -> None:
        """Save the answer's text (whatever part of it exists) and outcome. Sync; never
        raises."""
        if self.message_id is None:
            # The start could not save it: try once more, so the answer is not lost.
            self.message_id = self._create_answer()
            if self.message_id is None:
                return
        metadata = {
            "status": status,
            "model": ending.model or self.model,
            "finishReason": finish_reason,
            "toolCalls": ending.tool_calls,
        }
        if error_code:
            metadata["errorCode"] = error_code
        if error_message:
            metadata["errorMessage"] = error_message
        try:
            assistant_message_finish(
                message_id=self.message_id,
                content=ending.content,
                tokens=ending.tokens,
                metadata=metadata,
            )
        except Exception:
            logger.exception("saving the answer %s failed", self.message_id)
