"""The web app's chat pages: the session list, a new session, adding members, the room."""

import json
import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from chat.models import Membership
from chat.services.messages import message_delete, message_send
from chat.services.receipts import SEEN, Mark, receipts_mark_batch
from chat.services.sessions import session_create
from chat.state import get_state
from tests.pages_html import csp_violations, external_urls

pytestmark = pytest.mark.django_db

User = get_user_model()


def boot_data(response) -> dict:
    """The JSON the room page hands its script (``json_script``)."""
    html = response.content.decode()
    match = re.search(r'<script id="room-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the room page has no room-data block"
    return json.loads(match.group(1))


# --- the session list -------------------------------------------------------------------------


def test_anonymous_visitors_get_the_landing_page_with_log_in_and_sign_up(client):
    html = client.get("/").content.decode()

    assert 'href="/login/"' in html and 'href="/signup/"' in html
    assert "Your sessions" not in html


def test_the_session_list_shows_last_message_unread_count_and_presence(client, alice, bob, room):
    message_send(author=bob, session_id=room.pk, content="first **plan**")
    message_send(author=bob, session_id=room.pk, content="- see the [notes](https://x.example)")
    async_to_sync_presence(bob.pk)
    client.force_login(alice)

    html = client.get("/").content.decode()

    assert "general" in html
    assert "<strong>bob:</strong> see the notes" in html  # Markdown marks left out
    assert re.search(r'class="badge badge-unread" title="2 unread">2<', html)
    assert re.search(r'class="member-dot online" title="bob \(online\)"', html)
    assert f'href="/rooms/{room.pk}/"' in html


def test_messages_a_member_has_seen_are_not_unread(client, alice, bob, room):
    first = message_send(author=bob, session_id=room.pk, content="one")
    message_send(author=bob, session_id=room.pk, content="two")
    receipts_mark_batch([Mark(alice.pk, first.pk, SEEN)])
    client.force_login(alice)

    html = client.get("/").content.decode()

    assert re.search(r'class="badge badge-unread" title="1 unread">1<', html)


def test_a_deleted_last_message_shows_as_deleted(client, alice, bob, room):
    message = message_send(author=bob, session_id=room.pk, content="secret")
    message_delete(user=bob, message_id=message.pk)
    client.force_login(alice)

    html = client.get("/").content.decode()

    assert "This message was deleted." in html and "secret" not in html


def test_the_session_list_shows_only_the_users_sessions(client, alice, carol, room):
    session_create(creator=carol, title="carols-room")
    client.force_login(alice)

    html = client.get("/").content.decode()

    assert "general" in html and "carols-room" not in html


def test_the_session_list_takes_a_fixed_number_of_queries(
    client, alice, bob, django_assert_max_num_queries
):
    client.force_login(alice)
    for n in range(8):
        session = session_create(creator=alice, title=f"room {n}", member_ids=[bob.pk])
        message_send(author=bob, session_id=session.pk, content=f"hello {n}")

    with django_assert_max_num_queries(10):
        response = client.get("/")

    assert response.content.decode().count('class="session-row') == 8


def async_to_sync_presence(user_id: int) -> None:
    from asgiref.sync import async_to_sync

    async_to_sync(get_state().connection_open)(user_id, f"test-{uuid.uuid4().hex}")


# --- a new session ----------------------------------------------------------------------------


def test_new_session_needs_a_login(client):
    response = client.get("/sessions/new/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/sessions/new/")


def test_new_session_with_members_by_username_opens_its_room(client, alice, bob, carol):
    client.force_login(alice)

    response = client.post("/sessions/new/", {"title": "plans", "members": "Bob, @carol"})

    membership = Membership.objects.get(user=alice, session__title="plans")
    assert response.status_code == 302
    assert response["Location"] == f"/rooms/{membership.session_id}/"
    assert membership.role == Membership.Role.OWNER
    members = set(membership.session.memberships.values_list("user__username", flat=True))
    assert members == {"alice", "bob", "carol"}


def test_new_session_names_unknown_and_inactive_users(client, alice, make_user):
    make_user("gone", is_active=False)
    client.force_login(alice)

    response = client.post("/sessions/new/", {"title": "plans", "members": "ghost gone"})

    assert response.status_code == 400
    assert "No active user named ghost, gone." in response.content.decode()
    assert not Membership.objects.filter(session__title="plans").exists()


def test_new_session_needs_a_title(client, alice):
    client.force_login(alice)

    response = client.post("/sessions/new/", {"title": "", "members": ""})

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


# --- the room ---------------------------------------------------------------------------------


def test_the_room_needs_a_login(client, room):
    response = client.get(f"/rooms/{room.pk}/")

    assert response.status_code == 302
    assert response["Location"].startswith(f"/login/?next=/rooms/{room.pk}/")


def test_an_unknown_room_is_404(client, alice):
    client.force_login(alice)

    response = client.get(f"/rooms/{uuid.uuid4()}/")

    assert response.status_code == 404
    assert "This session doesn't exist" in response.content.decode()


def test_a_room_of_which_the_user_is_not_a_member_is_403(client, carol, room):
    client.force_login(carol)

    response = client.get(f"/rooms/{room.pk}/")

    assert response.status_code == 403
    html = response.content.decode()
    assert "You're not a member of this session" in html and "general" not in html


def test_the_room_hands_its_script_the_messages_and_the_seq_to_join_from(client, alice, bob, room):
    old = message_send(author=bob, session_id=room.pk, content="old")
    receipts_mark_batch([Mark(alice.pk, old.pk, SEEN)])
    message_send(author=bob, session_id=room.pk, content="new")
    client.force_login(alice)

    response = client.get(f"/rooms/{room.pk}/")

    assert response.status_code == 200
    boot = boot_data(response)
    room.refresh_from_db()
    assert boot["session"] == {
        "id": str(room.pk),
        "title": "general",
        "lastSeq": room.last_seq,
        "agentId": None,
    }
    assert [m["content"] for m in boot["messages"]] == ["old", "new"]
    assert boot["hasOlder"] is False
    assert boot["me"] == {"id": alice.pk, "username": "alice", "isStaff": False, "role": "owner"}
    assert boot["lastSeenSeq"] == old.seq
    by_name = {m["username"]: m for m in boot["members"]}
    assert by_name["alice"]["lastSeenSeq"] == old.seq and by_name["bob"]["lastSeenSeq"] == 0
    assert by_name["alice"]["lastDeliveredSeq"] == old.seq, "seen implies delivered"


def test_the_room_shows_its_viewer_online_while_their_reload_has_no_connection(
    client, alice, bob, room
):
    """A reload renders the page after the old page's socket closed and before the new one
    opens: the viewer is not shown offline to themselves."""
    client.force_login(alice)

    boot = boot_data(client.get(f"/rooms/{room.pk}/"))

    online = {m["username"]: m["online"] for m in boot["members"]}
    assert online == {"alice": True, "bob": False}


def test_the_room_page_carries_the_newest_fifty_top_level_messages(client, alice, room):
    for n in range(55):
        message_send(author=alice, session_id=room.pk, content=f"m{n}")
    parent = message_send(author=alice, session_id=room.pk, content="parent")
    message_send(author=alice, session_id=room.pk, content="a reply", parent_id=parent.pk)
    client.force_login(alice)

    boot = boot_data(client.get(f"/rooms/{room.pk}/"))

    contents = [m["content"] for m in boot["messages"]]
    assert len(contents) == 50 and contents[-1] == "parent" and "a reply" not in contents
    assert boot["hasOlder"] is True
    assert boot["messages"][-1]["replyCount"] == 1


def test_message_text_reaches_the_page_as_inert_json(client, alice, room):
    message_send(author=alice, session_id=room.pk, content="</script><img src=x onerror=alert(1)>")
    client.force_login(alice)

    response = client.get(f"/rooms/{room.pk}/")

    html = response.content.decode()
    assert "<img src=x" not in html and "</script><img" not in html
    assert boot_data(response)["messages"][0]["content"] == "</script><img src=x onerror=alert(1)>"


def test_the_room_links_the_browsable_api_and_the_admin_for_staff_only(client, alice, room):
    client.force_login(alice)
    html = client.get(f"/rooms/{room.pk}/").content.decode()
    alice.is_staff = True
    alice.save()
    staff_html = client.get(f"/rooms/{room.pk}/").content.decode()

    assert 'href="/api/chat/sessions"' in html
    assert 'href="/admin/"' not in html
    assert 'href="/admin/"' in staff_html


def test_a_member_adds_someone_by_username_from_the_room(client, bob, carol, room):
    client.force_login(bob)

    response = client.post(f"/rooms/{room.pk}/members/", {"username": "CAROL"}, follow=True)

    assert Membership.objects.filter(session=room, user=carol).exists()
    assert "carol was added to the session." in response.content.decode()


def test_adding_an_unknown_user_says_so_and_adds_nobody(client, bob, room):
    client.force_login(bob)

    response = client.post(f"/rooms/{room.pk}/members/", {"username": "nobody"}, follow=True)

    assert "No active user named nobody." in response.content.decode()
    assert room.memberships.count() == 2


def test_a_non_member_cannot_add_members(client, carol, make_user, room):
    dave = make_user("dave")
    client.force_login(carol)

    response = client.post(f"/rooms/{room.pk}/members/", {"username": dave.username})

    assert response.status_code == 403
    assert not Membership.objects.filter(session=room, user=dave).exists()


# --- every page: offline and CSP-friendly -------------------------------------------------------


def rendered_pages(client, alice, room) -> dict[str, str]:
    pages = {"landing": client.get("/").content.decode()}
    message_send(author=alice, session_id=room.pk, content="see https://example.com/x")
    client.force_login(alice)
    for name, path in [
        ("list", "/"),
        ("new", "/sessions/new/"),
        ("room", f"/rooms/{room.pk}/"),
        ("404", f"/rooms/{uuid.uuid4()}/"),
    ]:
        pages[name] = client.get(path).content.decode()
    return pages


def test_no_page_loads_anything_from_another_host(client, alice, room):
    for name, html in rendered_pages(client, alice, room).items():
        assert external_urls(html) == [], name


def test_no_page_needs_inline_scripts_or_handlers(client, alice, room):
    for name, html in rendered_pages(client, alice, room).items():
        assert csp_violations(html) == [], name
        assert "<script" not in html or 'type="module"' in html or name in ("landing", "new", "404")


def test_the_page_scripts_and_styles_are_served_by_the_app(client):
    for path, kind in [
        ("/static/js/chat-client.js", "javascript"),
        ("/static/js/room.js", "javascript"),
        ("/static/js/markdown.js", "javascript"),
        ("/static/css/base.css", "text/css"),
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        # Module scripts only run when served with a JavaScript type.
        assert kind in response["Content-Type"], path


def test_static_paths_cannot_leave_the_static_folders():
    client = Client(raise_request_exception=False)
    for path in ["/static/../chatproject/settings/base.py", "/static/%2e%2e/manage.py"]:
        response = client.get(path)
        assert response.status_code in (400, 404), path
        assert b"SECRET_KEY" not in b"".join(getattr(response, "streaming_content", [b""]))


def test_a_page_path_without_its_slash_redirects_to_it(client, alice, room):
    client.force_login(alice)

    page = client.get(f"/rooms/{room.pk}?x=1")
    form = client.post("/sessions/new", {"title": "t"})

    assert page.status_code == 307 and page["Location"] == f"/rooms/{room.pk}/?x=1"
    assert form.status_code == 307 and form["Location"] == "/sessions/new/"


def test_the_scripts_import_nothing_from_other_hosts(client):
    from pathlib import Path

    static = Path(__file__).resolve().parents[2] / "static"
    for path in static.rglob("*.js"):
        text = path.read_text()
        imports = re.findall(r"""\bfrom\s+["']([^"']+)["']|\bimport\(\s*["']([^"']+)""", text)
        for spec in (a or b for a, b in imports):
            assert spec.startswith("./") or spec.startswith("../"), f"{path.name}: {spec}"
        if path.is_relative_to(static / "vendor"):
            # Third-party and unchanged (static/vendor/README.md): Prism has innerHTML in
            # the highlighter the page never calls; it only tokenizes (code-blocks.js).
            continue
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, path.name
        assert "document.write" not in text and "eval(" not in text, path.name
