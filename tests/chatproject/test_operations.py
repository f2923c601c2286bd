"""/healthz and /metrics: what an operator's probes and Prometheus read."""

import pytest
from django.test import AsyncClient, Client

pytestmark = pytest.mark.django_db(transaction=True)


async def test_healthz_is_degraded_not_down_when_only_ollama_is_unreachable(settings):
    settings.OLLAMA_URL = "http://127.0.0.1:9"
    response = await AsyncClient().get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded"
    assert {k: v["status"] for k, v in body["checks"].items()} == {
        "database": "ok",
        "cache": "ok",
        "channelLayer": "ok",
        "ollama": "error",
    }
    assert body["checks"]["ollama"]["url"] == "http://127.0.0.1:9"


async def test_healthz_is_ok_with_an_ollama_to_talk_to(ollama_emulator_settings):
    response = await AsyncClient().get("/healthz/")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_metrics_exposes_the_gateway_counters_in_prometheus_format():
    response = Client().get("/metrics")
    text = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    for name in (
        "chat_ws_connections",
        "chat_ws_events_total",
        "chat_ws_throttled_total",
        "chat_ws_errors_total",
        "chat_llm_streams_running",
        "chat_llm_tokens_streamed_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text
