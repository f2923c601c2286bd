"""Deactivating a user, whichever way, closes every socket of theirs on every worker within
1 s and refuses their tokens: ``manage.py deactivate_user``, a plain ``user.save()`` in
another process (a shell, another app), and the admin's change form over HTTP. Real daphne
workers; two of them on PostgreSQL and Redis. On the embedded default (no Redis) another
process has no way to the worker's in-memory channel layer, so only the admin runs there."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time

import httpx
import pytest
import websockets

from .conftest import ROOT

pytestmark = pytest.mark.e2e

WITHIN = 1.0


async def closed_at(ws) -> tuple[float, int, list[str]]:
    """When ``ws`` closed, with its close code and the error codes it was sent first."""
    codes = []
    try:
        while True:
            frame = json.loads(await ws.recv())
            if frame["event"] == "error":
                codes.append(frame["data"]["code"])
    except websockets.ConnectionClosed as closed:
        return time.monotonic(), closed.rcvd.code if closed.rcvd else None, codes


async def run_until_printed(platform, *args: str) -> float:
    """Run ``manage.py *args`` in a process of its own; the moment its first line came out
    (printed right after the user is saved inactive)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", *args,
        cwd=ROOT, env=platform.env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    printed = time.monotonic()
    assert line, "the command printed nothing"
    assert await asyncio.wait_for(process.wait(), 60) == 0
    return printed


def manage_shell(platform, code: str) -> None:
    """Run ``code`` in ``manage.py shell`` against the platform's database, and wait."""
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env=platform.env, check=True, timeout=60,
    )  # fmt: skip


def superuser(platform) -> httpx.Client:
    """An HTTP client logged in to the admin as a new superuser, on worker 0."""
    name = f"root{time.monotonic_ns()}"
    with httpx.Client(base_url=platform.worker(0).url) as http:
        http.post("/api/auth/register", json={"username": name, "password": "pw-Secret-123"})
    manage_shell(
        platform,
        "from accounts.models import User; "
        f"User.objects.filter(username='{name}').update(is_staff=True, is_superuser=True)",
    )
    http = httpx.Client(base_url=platform.worker(0).url, timeout=10, follow_redirects=False)
    page = http.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    logged_in = http.post(
        "/admin/login/",
        data={"username": name, "password": "pw-Secret-123", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{platform.worker(0).url}/admin/login/"},
    )
    assert logged_in.status_code == 302, logged_in.text[:500]
    return http


def untick_active(http: httpx.Client, user_id: int, base_url: str) -> float:
    """Post the admin change form of ``user_id`` with Active unticked; when it answered."""
    form = http.get(f"/admin/accounts/user/{user_id}/change/")
    assert form.status_code == 200
    text = form.text

    def value(name: str) -> str:
        found = re.search(rf'name="{name}"[^>]*value="([^"]*)"', text)
        return found.group(1) if found else ""

    data = {
        name: value(name)
        for name in ("csrfmiddlewaretoken", "username", "first_name", "last_name", "email",
                     "date_joined_0", "date_joined_1", "last_login_0", "last_login_1")
    }  # fmt: skip
    data["_save"] = "Save"
    saved = http.post(
        f"/admin/accounts/user/{user_id}/change/",
        data=data,
        headers={"Referer": f"{base_url}/admin/accounts/user/{user_id}/change/"},
    )
    answered = time.monotonic()
    assert saved.status_code == 302, saved.text[:2000]
    return answered


@pytest.mark.parametrize("way", ["command", "save", "admin-form"])
async def test_deactivation_closes_every_socket_within_a_second(platform, way):
    p = platform
    if way != "admin-form" and not p.shared:
        pytest.skip("another process reaches the workers' sockets through Redis (REDIS_URL)")
    mallory = p.user("mallory")
    sockets = [await p.connect(mallory, i) for i in range(len(p.workers))]
    sockets.append(await p.connect(mallory, 0))
    watchers = [asyncio.create_task(closed_at(ws)) for ws in sockets]

    if way == "command":
        done = await run_until_printed(p, "deactivate_user", mallory["username"])
    elif way == "save":
        code = (
            "from accounts.models import User; "
            f"u = User.objects.get(pk={mallory['id']}); u.is_active = False; u.save(); "
            "print('saved', flush=True)"
        )
        done = await run_until_printed(p, "shell", "-c", code)
    else:
        http = await asyncio.to_thread(superuser, p)
        done = await asyncio.to_thread(untick_active, http, mallory["id"], p.worker(0).url)
        http.close()

    # Timed from the deactivation: starting a command or logging in to the admin may take
    # long on a busy machine, and is not what is measured.
    closes = await asyncio.wait_for(asyncio.gather(*watchers), 10)
    for at, code, errors in closes:
        assert code == 4403 and errors == ["FORBIDDEN"]
        assert at - done <= WITHIN, f"closed {at - done:.2f} s after the deactivation"
    with httpx.Client(base_url=p.worker(len(p.workers) - 1).url, timeout=10) as http:
        me = http.get("/api/auth/me", headers={"Authorization": f"Bearer {mallory['access']}"})
        refreshed = http.post("/api/auth/token/refresh", json={"refresh": mallory["refresh"]})
    assert me.status_code == 401 and refreshed.status_code == 401
    again = await websockets.connect(f"{p.worker(0).ws_url}?token={mallory['access']}")
    assert json.loads(await asyncio.wait_for(again.recv(), 10))["data"]["code"] == "UNAUTHORIZED"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(again.recv(), 10)
    assert closed.value.rcvd.code == 4401
