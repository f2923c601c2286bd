"""``GET /healthz``: whether this worker can reach what it depends on.

Database, cache and channel layer are required: if one fails the answer is 503 ``down``.
Ollama is not: without it human chat still works, so it only makes the answer ``degraded``.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

CHECK_TIMEOUT = 3.0


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _cache() -> None:
    cache.set("healthz", "ok", 10)
    if cache.get("healthz") != "ok":
        raise RuntimeError("the cache did not return what was stored")


async def _channel_layer() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "healthz"})
    await layer.receive(channel)


async def _ollama() -> None:
    async with httpx.AsyncClient(timeout=CHECK_TIMEOUT) as client:
        response = await client.get(f"{settings.OLLAMA_URL.rstrip('/')}/api/version")
        response.raise_for_status()


async def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return {"status": "error", "error": detail}
    return {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 1)}


async def healthz(request) -> JsonResponse:
    names = ("database", "cache", "channelLayer", "ollama")
    results = await asyncio.gather(
        _timed(sync_to_async(_database, thread_sensitive=False)),
        _timed(sync_to_async(_cache, thread_sensitive=False)),
        _timed(_channel_layer),
        _timed(_ollama),
    )
    checks = dict(zip(names, results, strict=True))
    checks["ollama"]["url"] = settings.OLLAMA_URL
    required_ok = all(checks[n]["status"] == "ok" for n in ("database", "cache", "channelLayer"))
    if not required_ok:
        status, code = "down", 503
    elif checks["ollama"]["status"] != "ok":
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return JsonResponse({"status": status, "checks": checks}, status=code)
