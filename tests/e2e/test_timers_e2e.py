"""The worker's shared timers on a real daphne worker: a socket closes at its token's expiry
(``error`` UNAUTHORIZED, then 4401) and its user goes offline for the others."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
import websockets
from rest_framework_simplejwt.tokens import AccessToken

from .test_gateway_e2e import next_event, reply_to

pytestmark = pytest.mark.e2e


def _token_expiring_in(user: dict, seconds: int) -> str:
    """An access token for ``user`` that expires soon (the workers share this process's
    SECRET_KEY, the settings' default)."""
    token = AccessToken()
    token["user_id"] = user["id"]
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


async def test_token_expiry_closes_the_socket_and_its_user_goes_offline(platform):
    p = platform
    alice, bob = p.user("alice"), p.user("bob")
    room = p.room(alice, bob)
    a = await p.connect(alice)
    try:
        await reply_to(a, "session:join", {"sessionId": room})
        b = await p.connect({**bob, "access": _token_expiring_in(bob, 2)}, len(p.workers) - 1)
        (online,) = (await next_event(a, "presence:changes"))["data"]["changes"]

        expired = json.loads(await asyncio.wait_for(b.recv(), 10))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(b.recv(), 10)
        (offline,) = (await next_event(a, "presence:changes"))["data"]["changes"]

        assert online["status"] == "online" and online["user"]["id"] == bob["id"]
        assert expired["event"] == "error" and expired["data"]["code"] == "UNAUTHORIZED"
        assert closed.value.rcvd.code == 4401
        assert offline["status"] == "offline" and offline["user"]["id"] == bob["id"]
    finally:
        await a.close()
