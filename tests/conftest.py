"""Fixtures shared by every test: users, authenticated API clients, sessions, and a way to
listen to a session's broadcasts on the real channel layer."""

from __future__ import annotations

import asyncio
import itertools

import orjson
import pytest
from channels.layers import get_channel_layer
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from chat.events import frame_texts, group_for_session
from chat.services.sessions import session_create
from chat.state import get_state
from llm.indexing import index_queue
from llm.stream_state import get_stream_state

pytest_plugins = ["llm.emulator.pytest_plugin"]

_names = itertools.count()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    """Before a test's fixtures end (its database flushed): the files its uploads queued for
    indexing (``llm.indexing``) are done with, and their retries dropped, so no attempt
    writes into the flush or into the next test."""
    index_queue.settle()
    yield


@pytest.fixture(autouse=True)
def fresh_state():
    """Presence, throttle windows, offline queues and LLM streams (slots, live records, stop
    requests) start empty in every test."""
    get_state().reset()
    get_stream_state().streams_reset()
    yield
    get_state().reset()
    get_stream_state().streams_reset()


@pytest.fixture
def make_user(django_user_model):
    def make(username: str | None = None, **extra):
        name = username or f"user{next(_names)}"
        return django_user_model.objects.create_user(
            username=name, password="pw-Secret-123", **extra
        )

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def carol(make_user):
    """Not a member of the sessions the other fixtures make."""
    return make_user("carol")


@pytest.fixture
def client_for():
    """An API client that authenticates as ``user`` with a real access JWT."""

    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
        return client

    return make


@pytest.fixture
def room(alice, bob):
    """A session owned by alice with bob as a member."""
    return session_create(creator=alice, title="general", member_ids=[bob.pk])


@pytest.fixture
def listen():
    """Subscribe a fresh channel to a session's group; returns a function that drains the
    frames broadcast so far, decoded.

    One event loop serves the subscription and every drain: the Redis pub/sub layer keeps
    one layer instance per loop, and a channel exists only in the instance that made it.
    """
    layer = get_channel_layer()
    loop = asyncio.new_event_loop()

    def subscribe(session):
        channel = loop.run_until_complete(layer.new_channel())
        loop.run_until_complete(layer.group_add(group_for_session(session.pk), channel))

        async def _drain():
            frames = []
            while True:
                try:
                    message = await asyncio.wait_for(layer.receive(channel), timeout=0.3)
                except TimeoutError:
                    return frames
                frames.extend(orjson.loads(text) for text in frame_texts(message))

        return lambda: loop.run_until_complete(_drain())

    yield subscribe
    loop.run_until_complete(layer.flush())
    loop.close()


def on_postgres() -> bool:
    return connection.vendor == "postgresql"
