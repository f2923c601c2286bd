"""/healthz and /metrics: what an operator's probes and Prometheus read, and what everyone
else may (``chatproject.operator_access``): a bare liveness answer, nothing more."""

import pytest
from django.test import AsyncClient, Client

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "operator-secret-0123456789"


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN


OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


async def test_healthz_is_degraded_not_down_when_only_ollama_is_unreachable(settings):
    settings.OLLAMA_URL = "http://127.0.0.1:9"
    response = await AsyncClient().get("/healthz", headers=OPERATOR)
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
    response = await AsyncClient().get("/healthz/", headers=OPERATOR)
    assert response.status_code == 200 and response.json()["status"] == "ok"


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer "])
async def test_anyone_else_gets_only_a_bare_liveness_answer(settings, authorization):
    settings.OLLAMA_URL = "http://ollama.internal.example:11434"
    headers = {"Authorization": authorization} if authorization else {}

    response = await AsyncClient().get("/healthz", headers=headers)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert b"ollama" not in response.content


async def test_the_bare_answer_is_503_when_a_required_check_fails(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        }
    }

    response = await AsyncClient().get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "down"}


def test_metrics_exposes_the_gateway_counters_in_prometheus_format():
    response = Client().get("/metrics", headers=OPERATOR)
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


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Token {TOKEN}"])
def test_metrics_refuse_anyone_without_the_token(authorization):
    headers = {"Authorization": authorization} if authorization else {}

    response = Client(headers=headers).get("/metrics")

    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"chat_ws" not in response.content


def test_with_no_token_configured_an_empty_bearer_gets_nothing(settings):
    settings.METRICS_TOKEN = ""

    assert Client(headers={"Authorization": "Bearer "}).get("/metrics").status_code == 401
    assert Client(headers={"Authorization": "Bearer"}).get("/metrics").status_code == 401


def test_staff_see_metrics_and_health_detail_in_the_browser(client, make_user, settings):
    settings.METRICS_TOKEN = ""
    client.force_login(make_user("ops", is_staff=True))

    assert client.get("/metrics").status_code == 200
    assert "checks" in client.get("/healthz").json()


def test_a_member_who_is_not_staff_sees_neither(client, make_user):
    client.force_login(make_user("member"))

    assert client.get("/metrics").status_code == 401
    assert "checks" not in client.get("/healthz").json()
