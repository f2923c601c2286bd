"""Embeddings through Ollama (langchain-ollama's ``OllamaEmbeddings``, ``OLLAMA_EMBED_MODEL``),
and how a vector is stored: packed little-endian float32, as ``llm.models.Passage`` keeps it.

The clients get explicit timeouts (ollama-python's default is None: TRAPS) and the process's
one TLS context (``llm.provider.tls_context``), and their connections are closed after use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import httpx
import numpy as np
from django.conf import settings
from langchain_ollama import OllamaEmbeddings

from .provider import CONNECT_TIMEOUT_S, model_closing, tls_context

# Embedding a file's passages in batches of this many, one request each.
BATCH = 32
# Embedding a question must not hold an answer back for long.
QUESTION_READ_TIMEOUT_S = 10.0
DOCUMENTS_READ_TIMEOUT_S = 120.0
VECTOR_DTYPE = np.dtype("<f4")


def embedding_model(*, read_timeout: float = DOCUMENTS_READ_TIMEOUT_S) -> OllamaEmbeddings:
    return OllamaEmbeddings(
        model=settings.OLLAMA_EMBED_MODEL,
        base_url=settings.OLLAMA_URL,
        client_kwargs={"timeout": httpx.Timeout(CONNECT_TIMEOUT_S, read=read_timeout)},
        sync_client_kwargs={"verify": tls_context()},
        async_client_kwargs={"transport": httpx.AsyncHTTPTransport(verify=tls_context())},
    )


def embed_documents(
    texts: Sequence[str], *, after_batch: Callable[[], None] | None = None
) -> list[list[float]]:
    """The vectors of ``texts`` in order, in batches (sync: the indexer's threads), calling
    ``after_batch`` after each (the indexer renews its lease there)."""
    model = embedding_model()
    vectors: list[list[float]] = []
    for start in range(0, len(texts), BATCH):
        vectors.extend(model.embed_documents(list(texts[start : start + BATCH])))
        if after_batch is not None:
            after_batch()
    return vectors


async def embed_question(text: str) -> np.ndarray:
    """The unit vector of a question (async: a stream's start)."""
    async with model_closing(embedding_model(read_timeout=QUESTION_READ_TIMEOUT_S)) as model:
        vector = np.asarray(await model.aembed_query(text), dtype=np.float32)
    return unit(vector)


def unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def vector_pack(vector: Sequence[float]) -> bytes:
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


def vectors_unpack(blobs: Sequence[bytes], dimensions: int) -> np.ndarray:
    """Packed vectors as one ``(len(blobs), dimensions)`` float32 matrix."""
    joined = b"".join(bytes(blob) for blob in blobs)
    return np.frombuffer(joined, dtype=VECTOR_DTYPE).reshape(len(blobs), dimensions)
