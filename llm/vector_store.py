"""The plain vector store: a session's passage vectors searched by cosine similarity with
numpy, in the worker.

pgvector would let PostgreSQL do the search (an HNSW index, no matrix in each worker), but
it is an extension the database server must have, and this machine's package sources have
none (README, "Answers grounded in the room's files"). The plain store needs nothing beyond
the ``Passage`` table, so it works the same on SQLite and on any PostgreSQL; ``/healthz``
names it (``VECTOR_STORE``).

Each worker keeps the matrices of the sessions it searched lately (``CACHE_SESSIONS``),
normalised, with each row's passage id. Every search first reads the session's passage
count and newest id (one indexed query): a file indexed or removed on any worker changes
them, and the matrix is read again. Only the texts of the passages found are read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
from django.db.models import Count, Max

from .embeddings import vectors_unpack
from .models import Passage

VECTOR_STORE = "plain"
CACHE_SESSIONS = 64


class SessionVectors(NamedTuple):
    """A session's searchable passages: unit rows of ``matrix``, their ids in ``ids``."""

    fingerprint: tuple[int, int]
    matrix: np.ndarray
    ids: np.ndarray


class Hit(NamedTuple):
    passage_id: int
    score: float
    attachment_id: object
    message_id: object
    file_name: str
    index: int
    text: str


_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()


def _searchable(session_id):
    # A deleted message's attachments are gone from the room (its tombstone shows none).
    return Passage.objects.filter(session_id=session_id, attachment__message__is_deleted=False)


def session_vectors(session_id, *, dimensions: int | None = None) -> SessionVectors | None:
    """The session's passages as a matrix (of ``dimensions``-long vectors, if given, else
    of the newest passage's size), from this worker's cache while they are unchanged; None
    if the session has none."""
    found = _searchable(session_id).aggregate(count=Count("id"), last=Max("id"))
    if not found["count"]:
        with _lock:
            _cache.pop(session_id, None)
        return None
    fingerprint = (found["count"], found["last"])
    with _lock:
        cached = _cache.get(session_id)
        if cached is not None and cached.fingerprint == fingerprint:
            _cache.move_to_end(session_id)
            if dimensions is None or cached.matrix.shape[1] == dimensions:
                return cached
    if dimensions is None:
        dimensions = Passage.objects.get(pk=found["last"]).dimensions
    rows = list(
        _searchable(session_id)
        .filter(dimensions=dimensions)
        .order_by("pk")
        .values_list("pk", "embedding")
    )
    if not rows:
        return None
    ids = np.fromiter((pk for pk, _ in rows), dtype=np.int64, count=len(rows))
    matrix = vectors_unpack([blob for _, blob in rows], dimensions).astype(np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = matrix / np.where(norms == 0, 1, norms)
    vectors = SessionVectors(fingerprint, matrix, ids)
    with _lock:
        _cache[session_id] = vectors
        _cache.move_to_end(session_id)
        while len(_cache) > CACHE_SESSIONS:
            _cache.popitem(last=False)
    return vectors


def nearest(vectors: SessionVectors, query: np.ndarray, *, top_k: int) -> list[tuple[int, float]]:
    """The ``top_k`` passage ids most similar to the unit vector ``query``, best first, with
    their cosine similarity; only those pointing its way (similarity above 0)."""
    scores = vectors.matrix @ query.astype(np.float32)
    k = min(top_k, len(scores))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(vectors.ids[i]), float(scores[i])) for i in top if scores[i] > 0]


def passages_read(ranked: list[tuple[int, float]], *, max_chars: int) -> list[Hit]:
    """The passages of ``ranked`` in its order, as many as fit in ``max_chars`` of text
    (one that would overflow is left out, a shorter one after it may still fit)."""
    if not ranked:
        return []
    rows = {
        row[0]: row
        for row in Passage.objects.filter(pk__in=[pk for pk, _ in ranked]).values_list(
            "pk", "attachment_id", "attachment__message_id", "attachment__file_name", "index",
            "text",
        )
    }  # fmt: skip
    hits: list[Hit] = []
    room = max_chars
    for pk, score in ranked:
        row = rows.get(pk)
        if row is None or len(row[5]) > room:
            continue
        room -= len(row[5])
        hits.append(Hit(pk, score, *row[1:]))
    return hits


def cache_forget(session_id=None) -> None:
    """Drop this worker's cached matrices (one session's, or all): tests, and a worker that
    just changed a session's passages."""
    with _lock:
        if session_id is None:
            _cache.clear()
        else:
            _cache.pop(session_id, None)
