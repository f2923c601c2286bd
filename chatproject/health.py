"""``GET /healthz``: whether this worker can reach what it depends on.

Database, cache and channel layer are required: if one fails the answer is 503 ``down``.
Ollama is not: without it human chat still works, so it only makes the answer ``degraded``.

Anyone (a load balancer's probe) gets the bare answer, ``{"status": "ok"}`` or 503
``{"status": "down"}``, from the required checks. The checks one by one, with timings, the
Ollama URL and error text, are for operators only (``chatproject.operator_access``).
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

from llm.vector_store import VECTOR_STORE

from .operator_access import operator_allowed

REQUIRED = ("database", "cache", "channelLayer")

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
    detailed = await operator_allowed(request)
    checks = {
        "database": sync_to_async(_database, thread_sensitive=False),
        "cache": sync_to_async(_cache, thread_sensitive=False),
        "channelLayer": _channel_layer,
    }
    if detailed:
        checks["ollama"] = _ollama
    results = dict(zip(checks, await asyncio.gather(*map(_timed, checks.values())), strict=True))
    required_ok = all(results[name]["status"] == "ok" for name in REQUIRED)
    if not detailed:
        return JsonResponse(
            {"status": "ok" if required_ok else "down"}, status=200 if required_ok else 503
        )
    results["ollama"]["url"] = settings.OLLAMA_URL
    if not required_ok:
        status, code = "down", 503
    elif results["ollama"]["status"] != "ok":
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    # Where the assistant's passage vectors are searched (llm.vector_store).
    return JsonResponse({"status": status, "checks": results, "vectors": VECTOR_STORE}, status=code)
