"""The sessions REST doors: create, list, read, change, delete, and membership."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import ChatSession, Membership
from chat.services.messages import message_send
from chat.services.sessions import session_create
from llm.models import Agent

pytestmark = pytest.mark.django_db

SESSION_KEYS = {"id", "title", "createdBy", "members", "agentId", "createdAt", "lastMessageAt"}


def url(session, suffix=""):
    return f"/api/chat/sessions/{session.pk}{suffix}"


# --- create ----------------------------------------------------------------------------------


def test_create_makes_the_caller_owner_and_adds_the_named_members(client_for, alice, bob):
    agent = Agent.objects.create(name="helper")

    response = client_for(alice).post(
        "/api/chat/sessions",
        {"title": "plans", "memberIds": [bob.pk], "agentId": str(agent.pk)},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) >= SESSION_KEYS
    assert body["title"] == "plans"
    assert body["createdBy"] == {"id": alice.pk, "username": "alice"}
    assert body["agentId"] == str(agent.pk)
    assert body["lastMessageAt"] is None
    assert body["members"] == [
        {
            "id": alice.pk,
            "username": "alice",
            "role": "owner",
            "lastSeenSeq": 0,
            "lastDeliveredSeq": 0,
        },
        {
            "id": bob.pk,
            "username": "bob",
            "role": "member",
            "lastSeenSeq": 0,
            "lastDeliveredSeq": 0,
        },
    ]
    session = ChatSession.objects.get(pk=body["id"])
    assert set(session.members.values_list("username", flat=True)) == {"alice", "bob"}


def test_create_with_a_trailing_slash_and_no_members(client_for, alice):
    response = client_for(alice).post("/api/chat/sessions/", {"title": "solo"}, format="json")

    assert response.status_code == 201
    assert [m["id"] for m in response.json()["members"]] == [alice.pk]
    assert response.json()["agentId"] is None


def test_create_ignores_the_creator_in_member_ids(client_for, alice):
    response = client_for(alice).post(
        "/api/chat/sessions", {"title": "me", "memberIds": [alice.pk]}, format="json"
    )

    assert response.status_code == 201
    owner = {
        "id": alice.pk,
        "username": "alice",
        "role": "owner",
        "lastSeenSeq": 0,
        "lastDeliveredSeq": 0,
    }
    assert response.json()["members"] == [owner]


@pytest.mark.parametrize(
    "body",
    [
        {"title": "x", "memberIds": [999999]},
        {"title": "x", "memberIds": [2**63]},
        {"title": "x", "memberIds": ["abc"]},
        {"title": "x", "memberIds": 5},
        {"title": "x", "agentId": str(uuid.uuid4())},
        {"title": "x", "agentId": "not-a-uuid"},
        {"title": ""},
        {"title": "x" * 201},
        {"memberIds": []},
    ],
    ids=[
        "unknown-member",
        "huge-member-id",
        "member-not-int",
        "members-not-list",
        "unknown-agent",
        "malformed-agent",
        "empty-title",
        "long-title",
        "no-title",
    ],
)
def test_create_refuses_bad_input_with_400_and_creates_nothing(client_for, alice, body):
    response = client_for(alice).post("/api/chat/sessions", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert ChatSession.objects.count() == 0


def test_create_refuses_an_inactive_member(client_for, alice, make_user):
    gone = make_user("gone", is_active=False)

    response = client_for(alice).post(
        "/api/chat/sessions", {"title": "x", "memberIds": [gone.pk]}, format="json"
    )

    assert response.status_code == 400
    assert "memberIds" in response.json()["details"]


def test_create_refuses_garbage_json(client_for, alice):
    response = client_for(alice).post(
        "/api/chat/sessions", data="{'title':", content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_create_without_credentials_is_401(client_for):
    response = client_for().post("/api/chat/sessions", {"title": "x"}, format="json")

    assert response.status_code == 401
    assert ChatSession.objects.count() == 0


# --- list ------------------------------------------------------------------------------------


def test_list_shows_only_my_sessions_most_recently_active_first(client_for, alice, bob, carol):
    quiet = session_create(creator=alice, title="quiet")
    busy = session_create(creator=bob, title="busy", member_ids=[alice.pk])
    newest = session_create(creator=alice, title="newest, no messages")
    session_create(creator=carol, title="not mine")
    ChatSession.objects.filter(pk=quiet.pk).update(created_at=timezone.now() - timedelta(days=3))
    ChatSession.objects.filter(pk=busy.pk).update(created_at=timezone.now() - timedelta(days=2))
    message_send(author=bob, session_id=busy.pk, content="hi")
    ChatSession.objects.filter(pk=newest.pk).update(created_at=timezone.now() - timedelta(days=1))

    response = client_for(alice).get("/api/chat/sessions")

    assert response.status_code == 200
    assert [s["title"] for s in response.json()] == ["busy", "newest, no messages", "quiet"]


def test_list_puts_a_new_empty_session_before_one_whose_last_message_is_older(client_for, alice):
    old = session_create(creator=alice, title="old chat")
    message_send(author=alice, session_id=old.pk, content="long ago")
    ChatSession.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=9),
        last_message_at=timezone.now() - timedelta(days=8),
    )
    session_create(creator=alice, title="just made")

    titles = [s["title"] for s in client_for(alice).get("/api/chat/sessions/").json()]

    assert titles == ["just made", "old chat"]


def test_list_without_credentials_is_401(client_for):
    assert client_for().get("/api/chat/sessions").status_code == 401


# --- read, change, delete: who may ----------------------------------------------------------


@pytest.fixture
def caller(request, alice, bob, carol, client_for):
    """An API client for the named role in ``room`` (alice owns it, bob is a member)."""
    return client_for(
        {"owner": alice, "member": bob, "outsider": carol, "anonymous": None}[request.param]
    )


@pytest.mark.parametrize(
    ("caller", "status"),
    [("owner", 200), ("member", 200), ("outsider", 403), ("anonymous", 401)],
    indirect=["caller"],
)
def test_get_session_by_role(room, caller, status):
    response = caller.get(url(room))

    assert response.status_code == status
    if status == 200:
        assert response.json()["id"] == str(room.pk)
        assert [m["role"] for m in response.json()["members"]] == ["owner", "member"]


@pytest.mark.parametrize(
    ("caller", "status"),
    [("owner", 200), ("member", 403), ("outsider", 403), ("anonymous", 401)],
    indirect=["caller"],
)
def test_patch_session_by_role(room, caller, status):
    response = caller.patch(url(room, "/"), {"title": "renamed"}, format="json")

    assert response.status_code == status
    room.refresh_from_db()
    assert room.title == ("renamed" if status == 200 else "general")


@pytest.mark.parametrize(
    ("caller", "status"),
    [("owner", 204), ("member", 403), ("outsider", 403), ("anonymous", 401)],
    indirect=["caller"],
)
def test_delete_session_by_role(room, caller, status):
    response = caller.delete(url(room))

    assert response.status_code == status
    assert ChatSession.objects.filter(pk=room.pk).exists() == (status != 204)


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize(
    "session_id",
    [str(uuid.uuid4()), uuid.uuid4().hex, "not-a-uuid", "-" * 36, "0" * 40],
    ids=["unknown", "unknown-hex", "malformed", "dashes", "too-long"],
)
def test_unknown_or_malformed_session_id_is_404(client_for, alice, method, session_id):
    response = getattr(client_for(alice), method)(
        f"/api/chat/sessions/{session_id}", {"title": "x"}, format="json"
    )

    assert response.status_code == 404


def test_patch_changes_the_agent_and_clears_it_with_null(client_for, room, alice):
    agent = Agent.objects.create(name="helper")
    client = client_for(alice)

    assert client.patch(url(room), {"agentId": str(agent.pk)}, format="json").json()[
        "agentId"
    ] == str(agent.pk)
    response = client.patch(url(room), {"agentId": None}, format="json")

    assert response.status_code == 200 and response.json()["agentId"] is None


@pytest.mark.parametrize(
    "body",
    [{"title": ""}, {"title": 5 * "x" * 41}, {"agentId": str(uuid.uuid4())}, {"agentId": 7}],
    ids=["empty-title", "long-title", "unknown-agent", "agent-not-uuid"],
)
def test_patch_refuses_bad_input_and_changes_nothing(client_for, room, alice, body):
    response = client_for(alice).patch(url(room), body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    room.refresh_from_db()
    assert (room.title, room.agent_id) == ("general", None)


def test_staff_who_is_not_a_member_cannot_read_a_session(client_for, room, make_user):
    staff = make_user("mod", is_staff=True)

    assert client_for(staff).get(url(room)).status_code == 403


# --- members ---------------------------------------------------------------------------------


def test_a_member_may_add_a_user(client_for, room, bob, carol):
    response = client_for(bob).post(url(room, "/members"), {"userId": carol.pk}, format="json")

    assert response.status_code == 201
    assert {
        "id": carol.pk,
        "username": "carol",
        "role": "member",
        "lastSeenSeq": 0,
        "lastDeliveredSeq": 0,
    } in (response.json()["members"])
    assert Membership.objects.filter(session=room, user=carol).exists()


def test_adding_an_existing_member_again_is_a_200_no_op(client_for, room, alice, bob):
    response = client_for(alice).post(url(room, "/members/"), {"userId": bob.pk}, format="json")

    assert response.status_code == 200
    assert Membership.objects.filter(session=room).count() == 2


def test_an_outsider_cannot_add_themselves(client_for, room, carol):
    response = client_for(carol).post(url(room, "/members"), {"userId": carol.pk}, format="json")

    assert response.status_code == 403
    assert not Membership.objects.filter(session=room, user=carol).exists()


@pytest.mark.parametrize(
    "body",
    [{"userId": 999999}, {"userId": "abc"}, {}, {"userId": 0}, {"userId": 2**63}],
    ids=["unknown", "not-int", "missing", "zero", "huge"],
)
def test_adding_a_bad_user_id_is_400(client_for, room, alice, body):
    response = client_for(alice).post(url(room, "/members"), body, format="json")

    assert response.status_code == 400
    assert Membership.objects.filter(session=room).count() == 2


def test_adding_to_an_unknown_session_is_404(client_for, alice, carol):
    response = client_for(alice).post(
        f"/api/chat/sessions/{uuid.uuid4()}/members", {"userId": carol.pk}, format="json"
    )

    assert response.status_code == 404


def test_a_member_may_leave(client_for, room, bob):
    response = client_for(bob).delete(url(room, f"/members/{bob.pk}"))

    assert response.status_code == 204
    assert not Membership.objects.filter(session=room, user=bob).exists()


def test_a_member_cannot_remove_another_member(client_for, room, bob, carol):
    Membership.objects.create(session=room, user=carol)

    response = client_for(bob).delete(url(room, f"/members/{carol.pk}/"))

    assert response.status_code == 403
    assert Membership.objects.filter(session=room, user=carol).exists()


def test_the_owner_may_remove_a_member(client_for, room, alice, bob):
    response = client_for(alice).delete(url(room, f"/members/{bob.pk}"))

    assert response.status_code == 204
    assert not Membership.objects.filter(session=room, user=bob).exists()


@pytest.mark.parametrize("remover", ["alice", "bob"])
def test_the_owner_cannot_be_removed_not_even_by_themselves(client_for, room, alice, bob, remover):
    client = client_for({"alice": alice, "bob": bob}[remover])

    response = client.delete(url(room, f"/members/{alice.pk}"))

    assert response.status_code == 403
    assert Membership.objects.get(session=room, user=alice).role == "owner"


def test_removing_a_user_who_is_not_a_member_is_404(client_for, room, alice, carol):
    assert client_for(alice).delete(url(room, f"/members/{carol.pk}")).status_code == 404
    assert client_for(alice).delete(url(room, f"/members/{2**70}")).status_code == 404


def test_an_outsider_cannot_remove_members(client_for, room, bob, carol):
    response = client_for(carol).delete(url(room, f"/members/{bob.pk}"))

    assert response.status_code == 403
    assert Membership.objects.filter(session=room, user=bob).exists()


def test_member_routes_without_credentials_are_401(client_for, room, bob, carol):
    anonymous = client_for()

    assert anonymous.post(url(room, "/members"), {"userId": carol.pk}).status_code == 401
    assert anonymous.delete(url(room, f"/members/{bob.pk}")).status_code == 401


def test_staff_who_are_not_members_can_moderate_a_session(client_for, room, make_user, bob):
    moderator = make_user("mod", is_staff=True)
    api = client_for(moderator)
    renamed = api.patch(f"/api/chat/sessions/{room.pk}", {"title": "renamed"}, format="json")
    removed = api.delete(f"/api/chat/sessions/{room.pk}/members/{bob.pk}")
    deleted = api.delete(f"/api/chat/sessions/{room.pk}")
    assert (renamed.status_code, removed.status_code, deleted.status_code) == (200, 204, 204)
    assert renamed.json()["title"] == "renamed"
