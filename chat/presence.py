"""Who is online, kept in the shared cache so every worker sees the same answer.

A user is online while any of their connections is open. Each open connection refreshes a
key that expires on its own (``PRESENCE_TTL``), so a killed worker can't leave a user stuck
online: its keys simply run out. The WebSocket gateway writes these keys; until a user
connects, they read as offline.
"""

from __future__ import annotations

from django.core.cache import cache

from accounts.serializers import UserSerializer

from .models import ChatSession
from .serializers import iso

PRESENCE_TTL = 60


def presence_key(user_id: int) -> str:
    return f"presence:{user_id}"


def online_user_ids(user_ids) -> set[int]:
    keys = {presence_key(uid): uid for uid in user_ids}
    found = cache.get_many(list(keys))
    return {keys[k] for k, connections in found.items() if connections}


def presence_for_session(*, session: ChatSession) -> list[dict]:
    members = [m.user for m in session.memberships.select_related("user").order_by("id")]
    online = online_user_ids([u.pk for u in members])
    return [
        {
            "user": UserSerializer(user).data,
            "status": "online" if user.pk in online else "offline",
            "lastSeenAt": iso(user.last_seen_at),
        }
        for user in members
    ]
