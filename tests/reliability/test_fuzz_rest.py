"""Fuzzing the REST doors' request bodies with hypothesis: every main POST / PUT / PATCH
endpoint gets JSON objects with its fields (plausible and wild values), other JSON, and
bytes that are no JSON, as JSON, form or plain text. No answer is a 5xx.

In-process with DRF's ``APIClient`` (fixed seed, bounded examples per endpoint), then a
smaller sample over HTTP against a real worker.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.services.messages import message_send
from chat.services.sessions import session_create
from chat.state import get_state
from llm.models import Agent

from .strategies import rest_bodies

pytestmark = pytest.mark.e2e

CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain"]

# (method, path template, body kind, as staff?)
ENDPOINTS = [
    ("post", "/api/chat/sessions", "session", False),
    ("patch", "/api/chat/sessions/{room}", "session", False),
    ("post", "/api/chat/sessions/{room}/members", "member", False),
    ("post", "/api/chat/messages", "message", False),
    ("put", "/api/chat/messages/{message}", "edit", False),
    ("post", "/api/chat/messages/{message}/reactions", "reaction", False),
    ("post", "/api/chat/messages/{message}/attachments", "attachment", False),
    ("post", "/api/auth/register", "register", False),
    ("post", "/api/auth/token", "token", False),
    ("post", "/api/auth/token/refresh", "refresh", False),
    ("post", "/api/stream", "stream", False),
    ("post", "/api/llm/query", "query", False),
    ("post", "/api/llm/agents", "agent", True),
    ("patch", "/api/llm/agents/{agent}", "agent", True),
]


@pytest.fixture
def doors(alice, bob, carol, client_for, ollama_emulator_settings, settings):
    settings.AUTH_RATE = "off"
    staff = type(alice).objects.create_user(username="staff", password="pw-Secret-123",
                                            is_staff=True)  # fmt: skip
    room = session_create(creator=alice, title="fuzz", member_ids=[bob.pk])
    other = session_create(creator=carol, title="other")
    message = message_send(author=alice, session_id=room.pk, content="hello")
    agent = Agent.objects.create(name="fuzz agent", model="llama3.2")
    ids = {"room": str(room.pk), "message": str(message.pk), "agent": str(agent.pk)}
    id_list = [ids["room"], ids["message"], str(other.pk), ids["agent"]]
    return {"alice": client_for(alice), "staff": client_for(staff)}, ids, id_list


def _call(client, method: str, path: str, body: bytes, content_type: str):
    response = getattr(client, method)(path, data=body, content_type=content_type)
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)  # an answer that started: let it finish
    return response


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "template", "kind", "staff"), ENDPOINTS,
                         ids=[f"{m} {t}" for m, t, _, _ in ENDPOINTS])  # fmt: skip
def test_no_body_gets_a_5xx(doors, method, template, kind, staff):
    clients, ids, id_list = doors
    client = clients["staff" if staff else "alice"]
    path = template.format(**ids)
    statuses: dict[int, int] = {}

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(body=rest_bodies(kind, id_list), content_type=st.sampled_from(CONTENT_TYPES))
    def check(body: bytes, content_type: str) -> None:  # fmt: skip
        get_state().reset()
        response = _call(client, method, path, body, content_type)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (body[:300], content_type, response.content[:300])

    check()
    print(f"\nREST fuzz {method.upper()} {template}: {statuses}")


def test_a_sample_of_bodies_on_a_real_worker(rel_platform):
    import httpx

    p = rel_platform
    seeded = p.seed(2, [[0, 1], [1]])
    alice = seeded.users[0]
    room, other = seeded.rooms
    with p.api(alice) as http:
        message = http.post("/api/chat/messages", json={"sessionId": room, "content": "hi"}).json()
    ids = {"room": room, "message": message["id"], "agent": other}
    id_list = [room, message["id"], other]
    statuses: dict[int, int] = {}
    sample = [e for e in ENDPOINTS if not e[3] and e[2] not in ("register", "token")]

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(
        endpoint=st.sampled_from(sample),
        data=st.data(),
        content_type=st.sampled_from(CONTENT_TYPES),
    )
    def check(endpoint, data, content_type: str) -> None:
        method, template, kind, _ = endpoint
        body = data.draw(rest_bodies(kind, id_list))
        with httpx.Client(base_url=p.url(sum(statuses.values())), timeout=30) as http:
            response = http.request(
                method.upper(), template.format(**ids), content=body,
                headers={"Authorization": f"Bearer {alice['access']}",
                         "Content-Type": content_type},
            )  # fmt: skip
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (method, template, body[:300], response.text[:300])

    check()
    print(f"\nREST fuzz (real worker): {statuses}")
