"""``chatproject.daphne_close_codes`` pinned against the installed daphne and autobahn, on
real daphne processes: without the patch an application's 1009 still does not reach the
client (so the patch is still needed; once it does, delete the module and this test), with
it the client reads 1009, and every other code takes daphne's own path."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import subprocess
import sys
import time

import pytest
import websockets

from chatproject import daphne_close_codes
from tests.e2e.conftest import ROOT, free_port, stop_process

pytestmark = pytest.mark.e2e


def serve(patched: bool):
    port = free_port()
    env = dict(os.environ, CLOSE_CODES_PATCH="1" if patched else "0")
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "--bind", "127.0.0.1", "--port", str(port),
         "tests.chatproject.close_code_app:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return port, process
        except OSError:
            time.sleep(0.2)
    stop_process(process)
    raise RuntimeError("daphne did not start")


@pytest.fixture(scope="module")
def plain_daphne():
    port, process = serve(patched=False)
    yield port
    stop_process(process)


@pytest.fixture(scope="module")
def patched_daphne():
    port, process = serve(patched=True)
    yield port
    stop_process(process)


async def close_code(port: int, code: int) -> int | None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/?{code}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_daphne_alone_still_cannot_send_1009(plain_daphne):
    assert await close_code(plain_daphne, 1009) != 1009, (
        "daphne sends an application's 1009 by itself now: delete chatproject/"
        "daphne_close_codes.py (and its install() in chatproject/asgi.py) and this test"
    )


async def test_with_the_patch_the_client_reads_1009(patched_daphne):
    assert await close_code(patched_daphne, 1009) == 1009


@pytest.mark.parametrize("code", [1000, 4401, 4503])
async def test_every_other_code_takes_daphnes_own_path(patched_daphne, code):
    assert await close_code(patched_daphne, code) == code


def test_the_patched_method_keeps_the_shape_the_patch_wraps():
    from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol

    assert list(inspect.signature(daphne_close_codes.DAPHNE_SERVER_CLOSE).parameters) == [
        "self",
        "code",
    ]
    assert {"code", "isReply"} <= set(inspect.signature(AutobahnProtocol.sendCloseFrame).parameters)
