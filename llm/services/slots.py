"""Concurrency slots: at most ``MAX_CONCURRENT_STREAMS`` answers are written at once across
every worker, whichever door asked for them (rooms, ``/ws/ai/``, SSE, ``/api/llm/query``).

A slot is taken before anything is stored or sent, so a refusal (``STREAM_LIMIT``) costs
nothing; it lives in the shared state with a TTL that its holder keeps extending, so a worker
that dies holding one frees it within ``SLOT_TTL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from django.conf import settings

from chatproject.errors import DomainError

from ..stream_state import get_stream_state

logger = logging.getLogger(__name__)

SLOT_TTL_S = 60
KEEPALIVE_S = 15


async def slot_acquire(key: str) -> None:
    """Take a slot for ``key`` (a stream or request id): STREAM_LIMIT if none is free."""
    limit = settings.MAX_CONCURRENT_STREAMS
    if not await get_stream_state().stream_slot_acquire(key, limit=limit, ttl=SLOT_TTL_S):
        raise DomainError(
            "STREAM_LIMIT",
            f"{limit} answers are being written already; try again when one has finished.",
        )


async def slot_release(key: str) -> None:
    try:
        await get_stream_state().stream_slot_release(key)
    except Exception:
        # It expires on its own; a failed release only delays the next answer a little.
        logger.warning("releasing slot %s failed", key, exc_info=True)


async def _keep_alive(key: str) -> None:
    while True:
        await asyncio.sleep(KEEPALIVE_S)
        try:
            await get_stream_state().stream_keepalive(key, ttl=SLOT_TTL_S)
        except Exception:
            logger.warning("keeping slot %s alive failed", key, exc_info=True)


@contextlib.asynccontextmanager
async def slot_held(key: str) -> AsyncIterator[None]:
    """Keep an acquired slot alive while the block runs, and give it back after."""
    keeper = asyncio.create_task(_keep_alive(key))
    try:
        yield
    finally:
        keeper.cancel()
        await slot_release(key)


@contextlib.asynccontextmanager
async def slot(key: str) -> AsyncIterator[None]:
    """Acquire a slot (STREAM_LIMIT if none is free) and hold it for the block."""
    await slot_acquire(key)
    async with slot_held(key):
        yield
