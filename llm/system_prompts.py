"""The system prompt an answer starts with when neither its request nor its agent gives one.

Every LLM door starts the model's messages with one system prompt: the request's
(``systemPrompt`` of ``POST /api/stream``), else the agent's, else the door's default from
here (a ``/api/stream`` client that sends a system message of its own gets no default: it has
said what the model is). Without one a model is left to guess what it is and who it talks to,
and in a room it can't tell that the ``alice: `` in front of a message is its author and not
part of what was said.

- ``GROUP_CHAT``: a room (``stream:request``, and ``POST /api/llm/query`` about a session).
  The context builder (``llm.context``) puts each person's name and a colon in front of their
  messages there, which is what this prompt tells the model.
- ``ONE_TO_ONE``: one person talking with the assistant (``/ws/ai/``, ``POST /api/stream``,
  ``POST /api/llm/query`` without a session); messages carry no names. Seed 003's wording.
"""

from __future__ import annotations

GROUP_CHAT = (
    "You are the assistant in a group chat. Several people write in it, and each of their "
    'messages starts with its author\'s name and a colon, as in "alice: hello". Your own '
    "earlier answers carry no name, and neither does your reply. Answer the latest message, "
    "and use the names to keep track of who said what."
)

ONE_TO_ONE = "You are a helpful assistant."


def default_system_prompt(*, named: bool) -> str:
    """The default for a context whose human messages carry their authors' names (a group
    chat) or don't (one person talking with the assistant)."""
    return GROUP_CHAT if named else ONE_TO_ONE
