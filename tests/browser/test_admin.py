"""Django's admin in real Chromium: a moderator's message list fits a 1280 px screen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, TIMEOUT_MS
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

LONG = (
    "Checklist for the release: tag it from main once CI is green, update the changelog, "
    "bump the docs version and announce it with a link to the notes. " * 3
)


def make_superuser(web, user: dict) -> None:
    """Staff and superuser, as ``createsuperuser`` would make them."""
    code = (
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.filter(pk={user['id']}).update(is_staff=True, is_superuser=True)"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=web.env, check=True
    )


def test_the_message_list_fits_1280_px_without_scrolling_sideways(web, browser, tmp_path):
    moderator, other = web.user("moderator-with-a-long-name"), web.user("member")
    make_superuser(web, moderator)
    with web.api(moderator) as http:
        room = http.post(
            "/api/chat/sessions",
            json={"title": "Release planning for the quarter " * 3, "memberIds": [other["id"]]},
        ).json()["id"]
        for text in (LONG, "short", "```python\nprint('hello')\n```"):
            sent = http.post("/api/chat/messages", json={"sessionId": room, "content": text})
            assert sent.status_code == 201, sent.text

    base = web.worker(0).url
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{base}/admin/login/?next=/admin/chat/message/")
    page.fill("#id_username", moderator["username"])
    page.fill("#id_password", PASSWORD)
    page.locator("form [type=submit]").click()
    page.wait_for_url(f"{base}/admin/chat/message/")
    # Other tests' messages may be listed too (one platform serves the folder).
    expect(
        page.locator("#result_list tbody tr", has_text="Checklist for the release")
    ).to_be_visible()

    widths = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth,"
        " viewport: document.documentElement.clientWidth,"
        " list: document.querySelector('#changelist .results').scrollWidth,"
        " box: document.querySelector('#changelist .results').clientWidth})"
    )
    shot = Path(tmp_path) / "admin-messages-1280.png"
    page.screenshot(path=str(shot), full_page=True)
    context.close()
    assert widths["page"] <= widths["viewport"], (widths, shot)
    assert widths["list"] <= widths["box"], (widths, shot)
