"""Browser tests: the web app in real headless Chromium against real server processes.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright from PyPI: no browser is
downloaded. The server processes are started the way ``tests/e2e`` starts them (daphne
workers on a database of their own: two workers on one PostgreSQL and one Redis when
``DATABASE_URL`` and ``REDIS_URL`` are set, so the two people of a test talk through
different workers), with an Ollama emulator in this process as their ``OLLAMA_URL``.

Without Chromium or Playwright every test here is skipped, with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llm.emulator import EmulatorServer
from tests.e2e.conftest import Platform, running_platform

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "pw-Secret-123"
TIMEOUT_MS = 15_000


def _missing() -> str | None:
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    return None


# Package scope, not session: while Playwright's sync API runs, asyncio sees its loop as the
# running one, which would break the async tests that follow this folder.
@pytest.fixture(scope="package")
def browser():
    if reason := _missing():
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture(scope="package")
def web(browser) -> Iterator[Platform]:
    """The platform the browsers talk to, with ``web.ollama`` as its Ollama."""
    with running_platform("web") as running:
        yield running


@pytest.fixture
def ollama(web) -> Iterator[EmulatorServer]:
    """The emulator, reset around each test."""
    web.ollama.reset()
    yield web.ollama
    web.ollama.reset()


@dataclass
class Person:
    """One user in a browser context of their own (own cookies: own login)."""

    user: dict
    page: object
    base: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.user["username"]

    def open_room(self, room_id: str) -> None:
        self.page.goto(f"{self.base}/rooms/{room_id}/")
        self.page.wait_for_selector("#room[data-joined=true]")

    def say(self, text: str) -> None:
        box = self.page.locator("#composer .composer-input")
        box.fill(text)
        box.press("Enter")

    def message(self, text: str):
        """The main timeline's message containing ``text``."""
        return self.page.locator("#messages .msg", has_text=text)


@pytest.fixture
def people(web, browser):
    """``people(user, worker=0)``: a logged-in person; worker ``i`` serves person ``i`` unless
    told otherwise, so with two workers the people of a test sit on different ones."""
    opened: list[Person] = []

    def open_person(user: dict | None = None, worker: int | None = None) -> Person:
        user = user or web.user("u")
        index = len(opened) if worker is None else worker
        base = web.worker(index).url
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        person = Person(user=user, page=page, base=base)
        page.on("pageerror", lambda error: person.errors.append(str(error)))

        def on_dialog(dialog):
            person.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.goto(f"{base}/login/")
        page.fill("#id_username", user["username"])
        page.fill("#id_password", PASSWORD)
        page.click("form.stack button[type=submit]")
        page.wait_for_url(f"{base}/")
        opened.append(person)
        return person

    yield open_person
    for person in opened:
        person.page.context.close()
    for person in opened:
        assert person.errors == [], f"uncaught errors in {person.name}'s page: {person.errors}"


@pytest.fixture
def pair(web, people):
    """alice and bob, each in their own browser, in one room."""
    alice, bob = web.user("alice"), web.user("bob")
    room = web.room(alice, bob)
    a, b = people(alice), people(bob)
    a.open_room(room)
    b.open_room(room)
    return a, b, room


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where a test draws its pictures: ``docs/screenshots/`` with ``UPDATE_SCREENSHOTS=1``
    (the README's pictures), else a temporary folder."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path
