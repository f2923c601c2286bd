"""The OpenAPI schema and the browsable API: the self-documenting faces of the REST doors."""

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from rest_framework.test import APIClient

from chat.services.messages import message_send

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("auth", ["anonymous", "jwt", "session"])
def test_the_schema_is_served_as_openapi_to_anyone(client_for, alice, auth):
    if auth == "session":
        client = APIClient()
        client.force_login(alice)
    else:
        client = client_for(alice if auth == "jwt" else None)

    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/auth/token/",
        "/api/chat/messages/",
        "/api/chat/sessions/{session_id}/",
        "/api/chat/sessions/{session_id}/pins/",
        "/api/chat/messages/{message_id}/pin/",
        "/api/chat/messages/{message_id}/history/",
        "/api/chat/sessions/{session_id}/notifications/",
        "/api/chat/mentions/",
    ):
        assert path in schema["paths"]
    assert client.get("/api/schema").status_code == 200


def test_the_schema_generates_without_warnings_and_validates(tmp_path):
    GENERATOR_STATS.reset()

    call_command(
        "spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml")
    )

    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3.")


def test_every_operation_documents_the_refusals_it_may_answer(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    error = {"$ref": "#/components/schemas/Error"}

    assert schema["components"]["schemas"]["Error"]["required"] == ["code", "message"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in ("400", "401", "403", "404", "415", "429", "503"):
                content = responses[status]["content"]["application/json"]
                assert content["schema"] == error, (method, path, status)
            takes_a_file = method == "post" and "attachments" in path
            assert ("413" in responses) == takes_a_file, (method, path)
    upload = schema["paths"]["/api/chat/messages/{message_id}/attachments/"]["post"]
    # The operation's own success response stays as it declared it.
    assert "201" in upload["responses"]


def test_the_export_is_documented_with_its_formats(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    export = schema["paths"]["/api/chat/sessions/{session_id}/export/"]["get"]

    (fmt,) = [p for p in export["parameters"] if p["name"] == "format"]
    assert fmt["in"] == "query"
    assert fmt["schema"]["enum"] == ["json", "md"]
    assert set(export["responses"]["200"]["content"]) == {"application/json", "text/markdown"}


def test_the_api_docs_page_renders(client):
    assert client.get("/api/docs/").status_code == 200


@pytest.fixture
def browser(alice):
    """The web app's way in: a session cookie, and HTML wanted."""
    client = APIClient()
    client.force_login(alice)
    return client


def test_the_browsable_api_renders_the_session_list_for_a_logged_in_user(browser, room):
    response = browser.get("/api/chat/sessions", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "general" in response.content.decode()


def test_the_browsable_api_renders_history_and_a_message(browser, room, alice):
    message = message_send(author=alice, session_id=room.pk, content="hello from the browser")

    for url in (f"/api/chat/sessions/{room.pk}/messages/", f"/api/chat/messages/{message.pk}"):
        response = browser.get(url, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, url
        assert "hello from the browser" in response.content.decode()


def test_the_browsable_api_posts_with_the_session_cookie_and_csrf(alice, room):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    body = {"sessionId": str(room.pk), "content": "via cookie"}

    refused = client.post("/api/chat/messages", body, format="json")
    client.get("/api/chat/sessions", HTTP_ACCEPT="text/html")
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/chat/messages", body, format="json", HTTP_X_CSRFTOKEN=token)

    assert refused.status_code == 403
    assert accepted.status_code == 201


def test_the_browsable_api_answers_anonymous_users_with_401(room):
    response = APIClient().get("/api/chat/sessions", HTTP_ACCEPT="text/html")

    assert response.status_code == 401


def test_the_bot_and_webhook_doors_are_in_the_schema(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    for path, methods in {
        "/api/auth/bots/": {"get", "post"},
        "/api/auth/bots/{bot_id}/tokens/": {"get", "post"},
        "/api/auth/bots/{bot_id}/tokens/{token_id}/": {"delete"},
        "/api/chat/sessions/{session_id}/webhooks/": {"get", "post"},
        "/api/chat/webhooks/{webhook_id}/": {"delete"},
        "/api/chat/hooks/{secret}/": {"post"},
    }.items():
        assert methods <= set(paths[path]), path
    # Bots' tokens are a security scheme of their own; the hook URL needs none.
    scheme = schema["components"]["securitySchemes"]["botToken"]
    assert scheme["in"] == "header" and scheme["name"] == "Authorization"
    assert paths["/api/chat/hooks/{secret}/"]["post"]["security"] == [{}]
    message = schema["components"]["schemas"]["Message"]["properties"]
    assert message["isBot"]["type"] == "boolean"
