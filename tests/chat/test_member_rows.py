"""A session's members read as rows (``chat.member_rows``): the join and the presence endpoint
render them without model instances, in the shapes the REST session gives."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat.member_rows import member_rows, render_member, render_presence
from chat.models import Membership
from chat.selectors import session_with_members
from chat.serializers import MemberSerializer, iso
from chat.services.sessions import member_add
from chat.state import get_state

pytestmark = pytest.mark.django_db


def test_a_member_row_renders_as_the_member_serializer_does(room, alice, bob, carol):
    member_add(user=alice, session_id=room.pk, user_id=carol.pk)
    Membership.objects.filter(session=room, user=bob).update(
        last_seen_seq=4, last_delivered_seq=7, role=Membership.Role.ADMIN
    )
    from_serializer = MemberSerializer(session_with_members(room.pk).memberships.all(), many=True)

    assert [render_member(row) for row in member_rows(room.pk)] == from_serializer.data


def test_a_presence_row_carries_the_user_status_and_last_seen_time(room, alice, bob):
    seen = timezone.now()
    type(bob).objects.filter(pk=bob.pk).update(last_seen_at=seen)
    rows = {row.user_id: row for row in member_rows(room.pk)}

    assert render_presence(rows[bob.pk], online=False) == {
        "user": {"id": bob.pk, "username": "bob"},
        "status": "offline",
        "lastSeenAt": iso(seen),
    }
    assert render_presence(rows[alice.pk], online=True)["lastSeenAt"] is None


def test_the_members_of_a_big_room_are_read_in_one_query(room, make_user):
    Membership.objects.bulk_create(
        Membership(session=room, user=make_user(f"member{i}")) for i in range(60)
    )
    with CaptureQueriesContext(connection) as queries:
        rows = member_rows(room.pk)

    assert len(rows) == 62
    assert len(queries) == 1


async def test_who_is_online_is_read_for_many_users_at_once(alice, bob, carol):
    state = get_state()
    await state.presence_refresh_many([(bob.pk, "c-bob")])

    assert state.online([alice.pk, bob.pk, carol.pk]) == {bob.pk}
    assert await state.online_now([carol.pk, bob.pk]) == {bob.pk}
    assert state.online([]) == set()
