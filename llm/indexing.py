"""Indexing uploaded files for retrieval, off the request path.

A file to be indexed is handed over after the commit that stored it
(``chat.extensions.attachment_stored``, registered in ``LlmConfig.ready``) and queued on this
worker's ``IndexQueue``: a thread pool of ``INDEX_CONCURRENCY`` threads, so a send or an
upload never waits for it, and a burst of uploads can't take more than that many threads.
An attempt (``attachment_index_run``) extracts the text (``llm.extraction``), splits it into
passages, embeds them through Ollama (``llm.embeddings``) and stores them with the status
``ready`` in one transaction; a failure (a broken PDF, Ollama down) is stored as ``failed``
with its reason and tried again after ``INDEX_RETRY_MS`` (doubling), up to
``INDEX_MAX_ATTEMPTS`` attempts in all. The statuses are chat's
(``chat.services.attachment_index``), each one an ``attachment:index`` event.

Workers can die mid-attempt, or between a commit and the start of its attempt. While an
attempt runs it holds a lease in the shared state (Redis with ``REDIS_URL``, else this
process) that it keeps renewing; every worker's heartbeat (``chat.timers``) runs
``index_sweep``, which queues the attachments still pending or indexing, and an attempt
whose lease another worker holds is skipped. So a file left behind is picked up within a
beat or two of its lease expiring, and no file is indexed by two workers at once.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections, transaction

from chat.broadcaster import bind_loop
from chat.models import Attachment
from chat.services.attachment_index import (
    attachment_index_begin,
    attachment_index_fail,
    attachment_index_ready,
    attachments_index_waiting,
)
from chat.state import shared_redis

from .embeddings import embed_documents, vector_pack
from .extraction import ExtractionError, extract_text, split_passages
from .models import Passage
from .vector_store import cache_forget

logger = logging.getLogger(__name__)

LEASE_TTL_S = 60


class _Leases:
    """Who is indexing which attachment: a key with an expiry per attempt, in Redis when
    workers share one, else in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local: dict[str, float] = {}

    def take(self, key: str) -> bool:
        redis = shared_redis()
        if redis is not None:
            return bool(redis.sync.set(redis.key("index-lease", key), 1, nx=True, ex=LEASE_TTL_S))
        now = time.time()
        with self._lock:
            if self._local.get(key, 0.0) > now:
                return False
            self._local[key] = now + LEASE_TTL_S
            return True

    def renew(self, key: str) -> None:
        redis = shared_redis()
        if redis is not None:
            redis.sync.set(redis.key("index-lease", key), 1, ex=LEASE_TTL_S)
            return
        with self._lock:
            self._local[key] = time.time() + LEASE_TTL_S

    def release(self, key: str) -> None:
        redis = shared_redis()
        if redis is not None:
            redis.sync.delete(redis.key("index-lease", key))
            return
        with self._lock:
            self._local.pop(key, None)


leases = _Leases()


def _failure_reason(exc: Exception) -> str:
    if isinstance(exc, ExtractionError):
        return str(exc)
    if isinstance(exc, httpx.HTTPError | ConnectionError | OSError):
        return "The embedding model could not be reached; it will be tried again."
    status = getattr(exc, "status_code", None)
    if status == 404:
        return f"The embedding model {settings.OLLAMA_EMBED_MODEL} is not on the Ollama server."
    if status is not None:
        return f"The embedding model failed (HTTP {status}); it will be tried again."
    return f"Indexing failed ({type(exc).__name__})."


def _file_text(attachment: Attachment) -> str:
    with attachment.file.open("rb") as handle:
        return extract_text(file=handle, mime_type=attachment.mime_type)


def _passages_store(attachment: Attachment, texts: list[str], vectors: list) -> None:
    """Replace the attachment's passages and mark it ready, in one transaction."""
    session_id = attachment.message.session_id
    with transaction.atomic():
        Passage.objects.filter(attachment=attachment).delete()
        Passage.objects.bulk_create(
            Passage(
                session_id=session_id,
                attachment=attachment,
                index=index,
                text=text,
                embedding=vector_pack(vector),
                dimensions=len(vector),
            )
            for index, (text, vector) in enumerate(zip(texts, vectors, strict=True))
        )
        attachment_index_ready(attachment_id=attachment.pk)
    cache_forget(session_id)


def attachment_index_run(attachment_id) -> str | None:
    """One attempt at indexing an attachment (sync; the queue's threads call it): the status
    it ended in (``ready`` or ``failed``), or None if there was nothing to do (not waiting,
    gone, or another worker holds its lease)."""
    key = str(attachment_id)
    if not leases.take(key):
        return None
    try:
        attachment = attachment_index_begin(attachment_id=attachment_id)
        if attachment is None:
            return None
        try:
            text = _file_text(attachment)
            texts = split_passages(text)
            if not texts:
                raise ExtractionError("The file has no text to index.")
            leases.renew(key)
            vectors = embed_documents(texts, after_batch=lambda: leases.renew(key))
            _passages_store(attachment, texts, vectors)
        except Exception as exc:
            reason = _failure_reason(exc)
            logger.warning("indexing attachment %s failed: %s", attachment_id, reason,
                           exc_info=not isinstance(exc, ExtractionError))  # fmt: skip
            failed = attachment_index_fail(attachment_id=attachment_id, error=reason)
            return None if failed is None else Attachment.IndexStatus.FAILED
        logger.info("attachment %s indexed: %d passages", attachment_id, len(texts))
        return Attachment.IndexStatus.READY
    finally:
        leases.release(key)


def retry_delay_s(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``INDEX_RETRY_MS``, doubled
    for each attempt before."""
    return settings.INDEX_RETRY_MS / 1000 * 2 ** max(0, attempts - 1)


def _retry_delay(key: str) -> float | None:
    """Seconds until a failed attachment's next attempt; None once every one is used."""
    attempts = Attachment.objects.filter(pk=key).values_list("index_attempts", flat=True).first()
    if attempts is None or attempts >= settings.INDEX_MAX_ATTEMPTS:
        return None
    return retry_delay_s(attempts)


class IndexQueue:
    """This worker's indexing: attempts on a bounded thread pool, each attachment queued at
    most once at a time, retries after their delay."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: set[str] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._idle = threading.Condition(self._lock)
        # Retries waiting for their delay, by attachment.
        self._timers: dict[str, threading.Timer] = {}

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=max(1, settings.INDEX_CONCURRENCY), thread_name_prefix="indexing"
            )
        return self._executor

    def submit(self, attachment_id, *, delay_s: float = 0.0) -> bool:
        """Queue an attempt (after ``delay_s``); False if one is queued already. Returns at
        once, whatever thread calls it."""
        key = str(attachment_id)
        with self._lock:
            if key in self._queued:
                return False
            self._queued.add(key)
        # The attempts run in the caller's context: its event loop (``chat.broadcaster``)
        # is where the status events are handed to be broadcast.
        self._schedule(key, delay_s, contextvars.copy_context())
        return True

    def _schedule(self, key: str, delay_s: float, context: contextvars.Context) -> None:
        with self._lock:
            pool = self._pool()
        args = (context.run, self._attempt, key, context)
        if delay_s > 0:
            timer = threading.Timer(delay_s, self._due, args=(key, pool, args))
            timer.daemon = True
            with self._lock:
                self._timers[key] = timer
            timer.start()
        else:
            pool.submit(*args)

    def _due(self, key: str, pool: ThreadPoolExecutor, args: tuple) -> None:
        with self._lock:
            if self._timers.pop(key, None) is None:
                return  # cancelled meanwhile
        pool.submit(*args)

    def _attempt(self, key: str, context: contextvars.Context) -> None:
        """Run one attempt; after a failure the attachment stays queued for its retry."""
        retry_in = None
        try:
            if attachment_index_run(uuid.UUID(key)) == Attachment.IndexStatus.FAILED:
                retry_in = _retry_delay(key)
        except Exception:
            logger.exception("indexing attachment %s failed", key)
        finally:
            # This thread's database connections go back now, not when the thread ends.
            connections.close_all()
        if retry_in is not None:
            self._schedule(key, retry_in, context)
            return
        with self._lock:
            self._queued.discard(key)
            self._idle.notify_all()

    def queued(self) -> set[str]:
        with self._lock:
            return set(self._queued)

    def settle(self, timeout: float = 30.0) -> bool:
        """Drop the retries still waiting for their delay and wait for the attempts under
        way to end (a test's database is about to be flushed); False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                # An attempt that fails meanwhile schedules its retry: dropped next round.
                for key, timer in self._timers.items():
                    timer.cancel()
                    self._queued.discard(key)
                self._timers.clear()
            remaining = deadline - time.monotonic()
            if self.wait_idle(min(0.05, max(remaining, 0))):
                return True
            if remaining <= 0:
                return False

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._queued:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True


index_queue = IndexQueue()


def attachment_stored(attachment_id) -> None:
    """The indexer ``chat.extensions`` calls after an upload's commit."""
    index_queue.submit(attachment_id)


async def index_sweep() -> None:
    """Queue the attachments still waiting (pending, or left indexing by a dead worker):
    run by every worker's heartbeat, on the worker's event loop, which their status events
    are then broadcast from."""
    bind_loop()
    for attachment_id in await database_sync_to_async(attachments_index_waiting)():
        index_queue.submit(attachment_id)
