"""Which assistant a message asks for with an ``@``: ``@assistant`` (the session's agent, or
none) or ``@<agent name>``.

Matched case-insensitively, as a whole name: not preceded by a word character (so an e-mail
address is no mention) and followed by a non-word character or the end (so
``@assistants`` is not one). An agent's name may have spaces; where several names match at
one place the longest wins (``@Code Helper`` over ``@Code``), and of several mentions the
first in the text does.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

ASSISTANT = "assistant"


@dataclass(frozen=True)
class MentionTarget:
    """The assistant a message asks: an agent by id, or None for the session's own."""

    agent_id: uuid.UUID | None


def mention_pattern(names: list[str]) -> re.Pattern:
    """A pattern of ``@`` followed by any of ``names`` (longest first), as a whole name."""
    ordered = sorted({name for name in names if name}, key=len, reverse=True)
    choices = "|".join(re.escape(name) for name in ordered)
    return re.compile(rf"(?<!\w)@({choices})(?!\w)", re.IGNORECASE)


def mention_target(text: str, agents: list[tuple[uuid.UUID, str]]) -> MentionTarget | None:
    """The assistant ``text`` mentions first, given every agent's (id, name); None if it
    mentions none."""
    if "@" not in text:
        return None
    by_name = {name.lower(): agent_id for agent_id, name in agents}
    found = mention_pattern([ASSISTANT, *(name for _id, name in agents)]).search(text)
    if found is None:
        return None
    name = found.group(1).lower()
    if name == ASSISTANT:
        return MentionTarget(agent_id=None)
    return MentionTarget(agent_id=by_name[name])
