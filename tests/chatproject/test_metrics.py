"""The gateway's Prometheus metrics move with what they count: an open socket, a handled
event, a throttled event, an error reply; and ``/metrics`` serves them."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY
from rest_framework_simplejwt.tokens import AccessToken

from chatproject.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def connect(user) -> WebsocketCommunicator:
    path = f"/ws/chat/?token={AccessToken.for_user(user)}"
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["event"] == "connection:success"
    return communicator


async def ping(communicator, ref: str) -> dict:
    await communicator.send_json_to({"event": "ping", "data": {}, "ref": ref})
    return await communicator.receive_json_from(timeout=5)


async def test_an_open_socket_counts_as_a_connection_until_it_closes(alice):
    before = sample("chat_ws_connections")

    communicator = await connect(alice)
    assert sample("chat_ws_connections") == before + 1

    await communicator.disconnect()
    assert sample("chat_ws_connections") == before


async def test_events_throttles_and_errors_are_counted_by_event_and_code(alice, settings):
    settings.WS_THROTTLE_LIMIT = 1
    communicator = await connect(alice)
    events = sample("chat_ws_events_total", event="ping")
    throttled = sample("chat_ws_throttled_total", event="ping")
    limited = sample("chat_ws_errors_total", code="RATE_LIMITED")

    assert (await ping(communicator, "first"))["event"] == "ack"
    assert sample("chat_ws_events_total", event="ping") == events + 1
    assert sample("chat_ws_throttled_total", event="ping") == throttled
    assert sample("chat_ws_errors_total", code="RATE_LIMITED") == limited

    refused = await ping(communicator, "second")
    assert refused["event"] == "error" and refused["data"]["code"] == "RATE_LIMITED"
    assert sample("chat_ws_events_total", event="ping") == events + 2
    assert sample("chat_ws_throttled_total", event="ping") == throttled + 1
    assert sample("chat_ws_errors_total", code="RATE_LIMITED") == limited + 1

    await communicator.disconnect()


def test_the_metrics_endpoint_serves_the_gateway_counters(client, settings):
    settings.METRICS_TOKEN = "scraper-token"
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scraper-token").content.decode()

    for name in (
        "chat_ws_connections",
        "chat_ws_events_total",
        "chat_ws_throttled_total",
        "chat_ws_errors_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in body, name
