"""Who may start an assistant answer: people, never bots.

Every LLM door (``stream:request``, ``/ws/ai/``, ``/api/llm/query``, ``/api/stream``) calls
``assistant_start_check`` before it spends anything: a bot's messages could otherwise make
the assistant answer other bots (or itself) without end, on a token that never expires.
"""

from __future__ import annotations

from chatproject.errors import forbidden

BOTS_REFUSED = "Bots can't start the assistant."


def assistant_start_check(user) -> None:
    """FORBIDDEN for a bot account."""
    if getattr(user, "is_bot", False):
        raise forbidden(BOTS_REFUSED)
