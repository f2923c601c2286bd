"""``GET /api/chat/streams/:id/status`` and ``/metrics``: members only, from the row once a
stream has ended and from the shared state while it runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from chat.services.assistant import assistant_message_create
from chat.services.messages import message_send
from llm.models import Stream
from llm.stream_state import get_stream_state

pytestmark = pytest.mark.django_db

ENDPOINTS = ("status", "metrics")


@pytest.fixture
def stream(room, alice):
    """A stream being written: its worker holds its slot (or the sweeper would end it)."""
    prompt = message_send(author=alice, session_id=room.pk, content="hi")
    answer = assistant_message_create(session_id=room.pk)
    stream = Stream.objects.create(
        session=room, message=answer, user_message=prompt, requested_by=alice,
        model="llama3.2", max_tokens=100,
    )  # fmt: skip
    assert async_to_sync(get_stream_state().stream_slot_acquire)(str(stream.pk), limit=10, ttl=60)
    return stream


def ended(stream: Stream, **changes) -> Stream:
    started = timezone.now() - timedelta(seconds=3)
    fields = {
        "status": "completed", "tokens_generated": 40, "prompt_tokens": 12,
        "finish_reason": "stop", "started_at": started,
        "first_token_at": started + timedelta(milliseconds=500),
        "completed_at": started + timedelta(milliseconds=2500), "chunks_sent": 9,
        "bytes_sent": 2048, "errors": 0, **changes,
    }  # fmt: skip
    Stream.objects.filter(pk=stream.pk).update(**fields)
    stream.refresh_from_db()
    return stream


def test_status_of_an_ended_stream(client_for, bob, stream):
    stream = ended(stream)

    response = client_for(bob).get(f"/api/chat/streams/{stream.pk}/status")

    assert response.status_code == 200
    assert response.json() == {
        "streamId": str(stream.pk),
        "sessionId": str(stream.session_id),
        "messageId": str(stream.message_id),
        "status": "completed",
        "progress": 1.0,
        "tokensGenerated": 40,
        "startedAt": response.json()["startedAt"],
        "completedAt": response.json()["completedAt"],
        "model": "llama3.2",
    }
    assert response.json()["startedAt"].endswith("Z") and response.json()["completedAt"]


def test_metrics_of_an_ended_stream(client_for, bob, stream):
    stream = ended(stream)

    response = client_for(bob).get(f"/api/chat/streams/{stream.pk}/metrics/")

    assert response.status_code == 200
    assert response.json() == {
        "streamId": str(stream.pk),
        "totalTokens": 40,
        "promptTokens": 12,
        "tokensPerSecond": 20.0,
        "latency": 500,
        "durationMs": 2500,
        "bandwidth": 2048,
        "chunksSent": 9,
        "errors": 0,
    }


async def _publish(stream, deltas):
    for i, delta in enumerate(deltas):
        meta = {
            "streamId": str(stream.pk), "sessionId": str(stream.session_id),
            "messageId": str(stream.message_id), "status": "streaming", "index": i,
            "tokens": (i + 1) * 5, "chunks": i + 1, "bytes": (i + 1) * 100,
            "startedAt": stream.started_at.timestamp(),
            "firstTokenAt": stream.started_at.timestamp() + 0.25,
        }  # fmt: skip
        await get_stream_state().stream_publish(stream.session_id, str(stream.pk), meta=meta,
                                         delta=delta, ttl=60)  # fmt: skip


def test_a_running_stream_reports_its_live_counters(client_for, alice, stream):
    stream = ended(stream, status="streaming", completed_at=None, first_token_at=None)
    async_to_sync(_publish)(stream, ["a", "b", "c", "d"])

    status = client_for(alice).get(f"/api/chat/streams/{stream.pk}/status").json()
    metrics = client_for(alice).get(f"/api/chat/streams/{stream.pk}/metrics").json()

    assert (status["status"], status["tokensGenerated"], status["progress"]) == (
        "streaming",
        20,
        0.2,
    )
    assert status["completedAt"] is None
    assert (metrics["totalTokens"], metrics["chunksSent"], metrics["bandwidth"]) == (20, 4, 400)
    assert metrics["latency"] == 250 and metrics["tokensPerSecond"] > 0


def test_a_stream_with_no_text_yet_is_pending(client_for, alice, stream):
    status = client_for(alice).get(f"/api/chat/streams/{stream.pk}/status").json()
    metrics = client_for(alice).get(f"/api/chat/streams/{stream.pk}/metrics").json()

    assert (status["status"], status["progress"], status["tokensGenerated"]) == ("pending", 0.0, 0)
    assert (metrics["latency"], metrics["tokensPerSecond"], metrics["chunksSent"]) == (None, 0.0, 0)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_only_members_see_a_stream(client_for, carol, stream, endpoint):
    assert client_for(carol).get(f"/api/chat/streams/{stream.pk}/{endpoint}").status_code == 403
    assert client_for().get(f"/api/chat/streams/{stream.pk}/{endpoint}").status_code == 401


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_unknown_stream_is_404(client_for, alice, endpoint):
    missing = "00000000-0000-0000-0000-000000000000"
    response = client_for(alice).get(f"/api/chat/streams/{missing}/{endpoint}")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
