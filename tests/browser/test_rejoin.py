"""Reloading and reconnecting in real Chromium: the room stays live through reloads, says so
whenever it has to wait (never "Live" while its live events don't come), and nobody sees
themselves offline on their own page."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

# Runs in every document of the page before its scripts: on every change of the header or
# the member list, "Live" must mean joined on an open connection, and the page's own user
# must show online. What breaks that is kept in window.__rejoin.
WATCH = """
(() => {
  const seen = { violations: [], labels: [] };
  window.__rejoin = seen;
  const check = () => {
    const chip = document.querySelector("#conn-state");
    const room = document.querySelector("#room");
    if (!chip || !room) return;
    const label = chip.textContent;
    if (seen.labels[seen.labels.length - 1] !== label) seen.labels.push(label);
    const joined = room.dataset.joined === "true";
    const open = window.chatClient && window.chatClient.state === "open";
    if (label === "Live" && !(joined && open)) seen.violations.push("Live while not joined");
    const me = document.querySelector(`#member-list [data-user-id="${ME}"]`);
    if (me && me.classList.contains("offline")) seen.violations.push("shown offline to myself");
  };
  document.addEventListener("DOMContentLoaded", () => {
    check();
    new MutationObserver(check).observe(document.body, {
      subtree: true, childList: true, attributes: true, characterData: true,
    });
  });
})();
"""


def watch(person) -> None:
    person.page.add_init_script(WATCH.replace("${ME}", str(person.user["id"])))


def seen(person) -> dict:
    return person.page.evaluate("window.__rejoin")


def test_ten_reloads_in_15_s_leave_the_room_live_and_never_falsely_live(pair):
    a, b, _ = pair
    watch(a)
    violations, labels = [], []

    for _ in range(10):
        started = time.monotonic()
        a.page.reload(wait_until="domcontentloaded")
        time.sleep(max(0.0, 1.5 - (time.monotonic() - started)))
        report = seen(a)
        violations += report["violations"]
        labels += report["labels"]
    a.page.wait_for_selector("#room[data-joined=true]")
    b.say("after the reloads")

    expect(a.message("after the reloads")).to_be_visible(timeout=2000)
    report = seen(a)
    assert violations + report["violations"] == [], labels + report["labels"]
    expect(a.page.locator("#conn-state")).to_have_text("Live")


def _spend_connections(web, user: dict) -> int:
    """Open and close connections as ``user``, spread over the workers, until one is refused
    (RATE_LIMITED, close 4429); how many were accepted. Playwright's sync API owns this
    thread's event loop: the sync WebSocket client, then."""
    for i in range(31):
        url = f"{web.worker(i).ws_url}?token={user['access']}"
        with connect(url) as ws:
            first = json.loads(ws.recv(timeout=10))
            if first["event"] == "error":
                assert first["data"]["code"] == "RATE_LIMITED" and first["data"]["retryAfter"]
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=10)
                assert closed.value.rcvd.code == 4429
                return i
            assert first["event"] == "connection:success"
    raise AssertionError("31 connections in a minute, none refused")


def test_a_reload_refused_as_one_connection_too_many_says_so_then_goes_live(web, pair):
    """The 31st connection in a minute is refused (4429): the room says it waits, for how
    long, and is live again once the wait is over, with what was said meanwhile."""
    a, b, _ = pair
    watch(a)
    # The pages alice opened (the session list, the room) connected too.
    assert 27 <= _spend_connections(web, a.user) <= 28

    a.page.reload(wait_until="domcontentloaded")

    chip = a.page.locator("#conn-state")
    expect(chip).to_have_attribute("data-state", "waiting")
    expect(chip).to_contain_text("Too many connections · retrying in")
    b.say("while you waited")
    expect(chip).to_have_text("Live", timeout=75_000)
    expect(a.message("while you waited")).to_be_visible()
    assert seen(a)["violations"] == []


def test_six_joins_on_one_connection_are_limited_and_the_room_says_it_waits(pair):
    """The page's script joining its session again and again on one connection is still
    limited (the 6th in a minute); a rejoin the client then needs waits, says so, and goes
    live again after ``retryAfter``."""
    a, b, room = pair
    watch(a)
    a.page.reload()
    a.page.wait_for_selector("#room[data-joined=true]")  # the page's own join: the 1st

    codes = a.page.evaluate(
        """async (sessionId) => {
          const codes = [];
          for (let i = 0; i < 5; i += 1) {
            try {
              await window.chatClient.request("session:join", { sessionId });
              codes.push("ack");
            } catch (error) {
              codes.push(error.code);
            }
          }
          return codes;
        }""",
        room,
    )
    assert codes == ["ack"] * 4 + ["RATE_LIMITED"]

    a.page.evaluate("(sessionId) => { window.chatClient.joinSession(sessionId); }", room)
    chip = a.page.locator("#conn-state")
    expect(chip).to_contain_text("Too many rejoins · live again in")
    expect(chip).to_have_attribute("data-state", "waiting")
    expect(chip).to_have_text("Live", timeout=75_000)
    b.say("after the wait")
    expect(a.message("after the wait")).to_be_visible(timeout=2000)
    assert seen(a)["violations"] == []
