"""Grounding an answer in the room's files: the passages most like the question go to the
model, and the answer records which files it was given (``citations``).

When a room stream starts (a ``stream:request``, an ``@assistant`` mention, a regenerate)
``grounded_context`` looks for the session's indexed passages. With none (most rooms) it
costs one query and the context is left as it is. Otherwise the question is embedded
(``llm.embeddings``), compared with the session's passages (``llm.vector_store``), and the
best ``RETRIEVAL_TOP_K`` within ``RETRIEVAL_MAX_CHARS`` go to the model as one system
message just before the question, each under its file's name. Retrieval never fails an
answer: if the embedding model can't be reached the answer goes on without passages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import NamedTuple

from channels.db import database_sync_to_async
from django.conf import settings
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from .embeddings import QUESTION_READ_TIMEOUT_S, embed_question
from .vector_store import Hit, SessionVectors, nearest, passages_read, session_vectors

logger = logging.getLogger(__name__)

INTRO = (
    "Passages from files shared in this room, the most relevant to the question first. "
    "Use them when they help, and name the file an answer comes from."
)


class Grounded(NamedTuple):
    messages: list[BaseMessage]
    citations: list[dict]


def citations_of(hits: Sequence[Hit]) -> list[dict]:
    """``[{attachmentId, fileName, messageId, passages: [index, ...]}]``, one per file, in
    the order of each file's best passage; its passages in file order."""
    files: dict = {}
    for hit in hits:
        entry = files.setdefault(
            hit.attachment_id,
            {
                "attachmentId": str(hit.attachment_id),
                "fileName": hit.file_name,
                "messageId": str(hit.message_id),
                "passages": [],
            },
        )
        entry["passages"].append(hit.index)
    for entry in files.values():
        entry["passages"].sort()
    return list(files.values())


def passages_message(hits: Sequence[Hit]) -> SystemMessage:
    parts = [INTRO]
    parts.extend(f"[{hit.file_name}, passage {hit.index + 1}]\n{hit.text}" for hit in hits)
    return SystemMessage("\n\n".join(parts))


def _question(messages: Sequence[BaseMessage], prompt: str) -> str:
    if prompt:
        return prompt
    for message in reversed(messages):
        if isinstance(message, HumanMessage) and isinstance(message.content, str):
            return message.content
    return ""


async def grounded_context(*, session_id, messages: list[BaseMessage], prompt: str) -> Grounded:
    """``messages`` with the passages that match the question (``prompt``, else the last
    person's message) before it, and their citations; as given, with none, if the session
    has no indexed passages or retrieval fails."""
    question = _question(messages, prompt)
    if not question.strip():
        return Grounded(messages, [])
    try:
        vectors = await database_sync_to_async(session_vectors)(session_id)
        if vectors is None:
            return Grounded(messages, [])
        async with asyncio.timeout(QUESTION_READ_TIMEOUT_S):
            query = await embed_question(question)
        hits = await database_sync_to_async(_search)(session_id, vectors, query)
    except Exception as exc:
        logger.warning("retrieval for session %s failed: %s", session_id, type(exc).__name__)
        return Grounded(messages, [])
    if not hits:
        return Grounded(messages, [])
    grounded = [*messages[:-1], passages_message(hits), *messages[-1:]]
    return Grounded(grounded, citations_of(hits))


def _search(session_id, vectors: SessionVectors, query) -> list[Hit]:
    """The passages nearest ``query``: in the matrix already read, unless the question's
    vector has another size (the embedding model changed since some files were indexed)."""
    if vectors.matrix.shape[1] != len(query):
        vectors = session_vectors(session_id, dimensions=len(query))
        if vectors is None:
            return []
    ranked = nearest(vectors, query, top_k=settings.RETRIEVAL_TOP_K)
    return passages_read(ranked, max_chars=settings.RETRIEVAL_MAX_CHARS)
