"""Django's connection pool with ``CONN_HEALTH_CHECKS``: a pooled connection whose server
ended it is replaced when taken, and the query that takes it never sees it."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection

from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin():
    """A connection of its own to the test database, outside the pool."""
    if not on_postgres():
        pytest.skip("needs PostgreSQL: the embedded default has no connection pool")
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("pool", None)
    with psycopg.connect(**params, autocommit=True) as conn:
        yield conn


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def end_every_other_backend(admin) -> list[int]:
    """Ends every connection to the test database but the admin's (only this test process
    has any), and waits until the server has let them go."""
    ended = [
        row[0]
        for row in admin.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    ]
    admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [ended])
    deadline = time.monotonic() + 10
    while admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [ended]
    ).fetchone()[0]:
        assert time.monotonic() < deadline, "the server never ended the backends"
        time.sleep(0.05)
    return ended


def test_the_pool_checks_connections_it_hands_out():
    if not on_postgres():
        pytest.skip("needs PostgreSQL: the embedded default has no connection pool")

    assert connection.settings_dict["OPTIONS"]["pool"]
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True


def test_a_connection_ended_by_the_server_is_replaced_on_the_next_query(admin):
    # A pool of its minimum size, whatever earlier tests grew it to: psycopg_pool backs off
    # between failed checks (1 s, then 2, 4, ...: psycopg#709), so a pool of many dead
    # connections takes longer than its 10 s timeout to find a live one (docs/scaling.md).
    connection.close_pool()
    used = backend_pid()
    connection.close()  # back to the pool
    lost_before = connection.pool.get_stats().get("connections_lost", 0)

    ended = end_every_other_backend(admin)

    assert used in ended
    replacement = backend_pid()
    assert replacement not in ended
    assert connection.pool.get_stats().get("connections_lost", 0) > lost_before
