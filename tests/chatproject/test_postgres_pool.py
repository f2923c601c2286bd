"""The pooled-connection check: no round trip for a healthy idle connection, psycopg's full
check (which fails) for one whose server ended it."""

from __future__ import annotations

import select
import time

import psycopg
import pytest
from django.db import connection

from chatproject.postgres.base import check_pooled_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def dsn_params():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the embedded default has no connection pool")
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    return {**params, "autocommit": True}


def last_query(pid: int, params: dict) -> str:
    with psycopg.connect(**params) as observer:
        return observer.execute(
            "SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone()[0]


def wait_readable(conn, timeout: float = 5) -> None:
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    deadline = time.monotonic() + timeout
    while not poller.poll(50):
        assert time.monotonic() < deadline, "the server never closed the connection"


def test_the_pool_is_given_the_check(dsn_params):
    assert connection.pool._check is check_pooled_connection


def test_a_healthy_idle_connection_passes_without_a_round_trip(dsn_params):
    with psycopg.connect(**dsn_params) as conn:
        conn.execute("SELECT 'the last thing it ran'")

        check_pooled_connection(conn)

        # psycopg's own check would have sent an empty query, which the server shows here.
        assert last_query(conn.info.backend_pid, dsn_params) == "SELECT 'the last thing it ran'"


def test_a_connection_whose_backend_was_ended_fails_the_check(dsn_params):
    with psycopg.connect(**dsn_params) as conn:
        with psycopg.connect(**dsn_params) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
        wait_readable(conn)

        with pytest.raises(psycopg.OperationalError):
            check_pooled_connection(conn)


def test_a_closed_connection_fails_the_check(dsn_params):
    conn = psycopg.connect(**dsn_params)
    conn.close()

    with pytest.raises(psycopg.OperationalError):
        check_pooled_connection(conn)
