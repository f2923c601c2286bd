"""Prometheus metrics of this worker, served at ``/metrics``.

Each worker process keeps its own counters; Prometheus scrapes every worker and sums.
Label values come from fixed sets (contract event names and error codes), never from client
input, so a client can't grow the number of series. Only an operator may read them
(``chatproject.operator_access``): others get 401.
"""

from __future__ import annotations

from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from .errors import DomainError, error_json
from .operator_access import operator_allowed

WS_CONNECTIONS = Gauge("chat_ws_connections", "WebSocket connections open on this worker.")
WS_EVENTS = Counter("chat_ws_events_total", "Client WebSocket events handled.", ["event"])
WS_THROTTLED = Counter("chat_ws_throttled_total", "Client events refused by a throttle.", ["event"])
WS_ERRORS = Counter("chat_ws_errors_total", "Error replies sent to clients.", ["code"])
# Kept by the stream runner (``llm.runner``), so every LLM door counts: rooms, /ws/ai/, SSE and
# /api/llm/query.
STREAMS_RUNNING = Gauge("chat_llm_streams_running", "LLM answers being written on this worker.")
TOKENS_STREAMED = Counter(
    "chat_llm_tokens_streamed_total", "Tokens of LLM answers, as Ollama counts them."
)
STREAM_ERRORS = Counter(
    "chat_llm_stream_errors_total", "LLM answers ended by an error, by contract code.", ["code"]
)


async def metrics_view(request) -> HttpResponse:
    if not await operator_allowed(request):
        refusal = DomainError(
            "UNAUTHORIZED",
            "Metrics are for operators: send Authorization: Bearer <METRICS_TOKEN>, "
            "or log in as staff.",
        )
        return error_json(refusal)
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
