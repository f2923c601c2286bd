"""The site's plain pages in real Chromium: the way from the landing page to the browsable API
goes through DRF's login and comes back to the API, not to the home page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, TIMEOUT_MS

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("link", ["header", "landing page"])
def test_logging_in_for_the_browsable_api_lands_on_the_api(web, browser, link):
    user = web.user("api")
    base = web.worker(0).url
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{base}/")

    if link == "header":
        page.locator(".top-nav").get_by_role("link", name="Browsable API").click()
    else:
        page.locator(".cards").get_by_role("link", name="/api-auth/login/").click()
    page.fill("#id_username", user["username"])
    page.fill("#id_password", PASSWORD)
    page.locator("form [type=submit]").click()

    page.wait_for_url(f"{base}/api/chat/sessions")
    expect(page.locator(".response-info")).to_contain_text("HTTP 200 OK")
    context.close()
