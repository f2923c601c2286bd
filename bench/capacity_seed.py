"""Set-up of ``bench/capacity.py``: its users, rooms and memberships, written in bulk.

Run as ``python -m bench.capacity_seed IN OUT`` in a worker's environment (its database and
settings): ``IN`` holds ``{"prefix", "password", "users", "rooms": [[member index, ...]]}``,
``OUT`` gets ``{"sessions": [session id, ...]}`` in the order of the rooms. Thousands of users
in hundreds of rooms take seconds this way, where the REST API would take minutes; what it
writes is what the API writes for a new room (a session with ``last_seq`` 0, its first member
the owner), and the benchmark then logs each user in through the token endpoint as a client
would. A process of its own, so the load generator never loads Django.
"""

from __future__ import annotations

import sys
from pathlib import Path

import django
import orjson

BATCH = 2000


def seed(spec: dict) -> list[str]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from chat.models import ChatSession, Membership

    user_model = get_user_model()
    password = make_password(spec["password"])  # one hash for all: they share the password
    with transaction.atomic():
        users = user_model.objects.bulk_create(
            [
                user_model(username=f"{spec['prefix']}{i}", password=password)
                for i in range(spec["users"])
            ],
            batch_size=BATCH,
        )
        ids = [user.pk for user in users]
        sessions = ChatSession.objects.bulk_create(
            [
                ChatSession(title=f"capacity room {i}", created_by_id=ids[members[0]])
                for i, members in enumerate(spec["rooms"])
            ],
            batch_size=BATCH,
        )
        Membership.objects.bulk_create(
            [
                Membership(
                    session=session,
                    user_id=ids[member],
                    role=Membership.Role.OWNER if k == 0 else Membership.Role.MEMBER,
                )
                for session, members in zip(sessions, spec["rooms"], strict=True)
                for k, member in enumerate(members)
            ],
            batch_size=BATCH,
        )
    return [str(session.pk) for session in sessions]


def main() -> None:
    source, target = map(Path, sys.argv[1:3])
    django.setup()
    sessions = seed(orjson.loads(source.read_bytes()))
    target.write_bytes(orjson.dumps({"sessions": sessions}))


if __name__ == "__main__":
    main()
