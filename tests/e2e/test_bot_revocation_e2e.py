"""A bot's sockets end within 1 s of its token being deleted (REST) or the bot deactivated,
on every worker, while its other token's sockets stay; a bot token in the URL is refused.
Real daphne workers: two sharing PostgreSQL and Redis when ``DATABASE_URL`` and
``REDIS_URL`` are set, else one on the embedded default (SQLite, in-memory layer)."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time

import httpx
import pytest
import websockets

from .test_deactivation_e2e import closed_at, manage_shell, run_until_printed, superuser

pytestmark = pytest.mark.e2e

WITHIN = 1.0


def staff_user(platform) -> dict:
    user = platform.user("staff")
    manage_shell(
        platform,
        "from accounts.models import User; "
        f"User.objects.filter(pk={user['id']}).update(is_staff=True)",
    )
    return user


def untick_active(http: httpx.Client, user_id: int, base_url: str) -> float:
    """Post a bot's admin change form as shown (its token inline's management form too),
    with Active unticked; when it answered."""
    path = f"/admin/accounts/user/{user_id}/change/"
    form = http.get(path)
    assert form.status_code == 200
    data = {}
    for tag in re.findall(r"<input[^>]*>", form.text):
        name = re.search(r'name="([^"]+)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if name is None or (kind and kind.group(1) in ("checkbox", "submit")):
            continue
        value = re.search(r'value="([^"]*)"', tag)
        data[name.group(1)] = html.unescape(value.group(1)) if value else ""
    data["_save"] = "Save"
    saved = http.post(path, data=data, headers={"Referer": f"{base_url}{path}"})
    answered = time.monotonic()
    assert saved.status_code == 302, saved.text[:2000]
    return answered


def bot_with_tokens(platform, staff: dict, count: int) -> tuple[dict, list[dict]]:
    with platform.api(staff) as http:
        bot = http.post("/api/auth/bots", json={"username": f"bot{time.monotonic_ns()}"})
        assert bot.status_code == 201, bot.text
        tokens = []
        for i in range(count):
            made = http.post(f"/api/auth/bots/{bot.json()['id']}/tokens", json={"name": f"t{i}"})
            assert made.status_code == 201, made.text
            tokens.append(made.json())
    return bot.json(), tokens


async def bot_socket(platform, token: str, index: int):
    ws = await websockets.connect(
        platform.worker(index).ws_url, additional_headers={"Authorization": f"Token {token}"}
    )
    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert first["event"] == "connection:success", first
    return ws


async def still_open(ws) -> bool:
    await ws.send(json.dumps({"event": "ping", "data": {}, "ref": "p"}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return reply["event"] == "ack"


async def test_deleting_a_bot_token_closes_its_sockets_on_every_worker_within_a_second(platform):
    p = platform
    staff = await asyncio.to_thread(staff_user, p)
    bot, (revoked, kept) = await asyncio.to_thread(bot_with_tokens, p, staff, 2)
    doomed = [await bot_socket(p, revoked["token"], i) for i in range(len(p.workers))]
    doomed.append(await bot_socket(p, revoked["token"], 0))
    survivors = [await bot_socket(p, kept["token"], i) for i in range(len(p.workers))]
    watchers = [asyncio.create_task(closed_at(ws)) for ws in doomed]

    def delete() -> float:
        with p.api(staff, len(p.workers) - 1) as http:
            deleted = http.delete(f"/api/auth/bots/{bot['id']}/tokens/{revoked['id']}")
        answered = time.monotonic()
        assert deleted.status_code == 204, deleted.text
        return answered

    done = await asyncio.to_thread(delete)
    closes = await asyncio.wait_for(asyncio.gather(*watchers), 10)
    for at, code, errors in closes:
        assert code == 4401 and errors == ["UNAUTHORIZED"]
        assert at - done <= WITHIN, f"closed {at - done:.2f} s after the token was deleted"
    for ws in survivors:
        assert await still_open(ws)
        await ws.close()
    async with httpx.AsyncClient(base_url=p.worker(0).url, timeout=10) as http:
        refused = await http.get(
            "/api/auth/me", headers={"Authorization": f"Token {revoked['token']}"}
        )
        assert refused.status_code == 401
        me = await http.get("/api/auth/me", headers={"Authorization": f"Token {kept['token']}"})
        assert me.json()["isBot"] is True


@pytest.mark.parametrize("way", ["command", "admin-form"])
async def test_deactivating_a_bot_closes_its_sockets_within_a_second(platform, way):
    p = platform
    if way == "command" and not p.shared:
        pytest.skip("another process reaches the workers' sockets through Redis (REDIS_URL)")
    staff = await asyncio.to_thread(staff_user, p)
    bot, (token,) = await asyncio.to_thread(bot_with_tokens, p, staff, 1)
    sockets = [await bot_socket(p, token["token"], i) for i in range(len(p.workers))]
    watchers = [asyncio.create_task(closed_at(ws)) for ws in sockets]
    if way == "command":
        done = await run_until_printed(p, "deactivate_user", bot["username"])
    else:
        http = await asyncio.to_thread(superuser, p)
        done = await asyncio.to_thread(untick_active, http, bot["id"], p.worker(0).url)
        http.close()
    closes = await asyncio.wait_for(asyncio.gather(*watchers), 10)
    for at, code, errors in closes:
        assert code == 4403 and errors == ["FORBIDDEN"]
        assert at - done <= WITHIN, f"closed {at - done:.2f} s after the deactivation"


async def test_a_bot_token_in_the_url_is_refused(platform):
    p = platform
    staff = await asyncio.to_thread(staff_user, p)
    _, (token,) = await asyncio.to_thread(bot_with_tokens, p, staff, 1)
    ws = await websockets.connect(f"{p.worker(0).ws_url}?token={token['token']}")
    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert frame["event"] == "error" and frame["data"]["code"] == "UNAUTHORIZED"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd.code == 4401
