"""A refresh token is good for one refresh, even when two requests race with it
(PostgreSQL, where requests really run at once)."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 6


def test_racing_refreshes_of_one_token_rotate_it_once(alice, settings):
    if not on_postgres():
        pytest.skip("needs PostgreSQL: SQLite runs one writer at a time")
    settings.AUTH_RATE = "off"
    refresh = str(RefreshToken.for_user(alice))
    start = threading.Barrier(RACERS)
    statuses: list[int] = []

    def racer() -> None:
        try:
            start.wait()
            response = APIClient().post(
                "/api/auth/token/refresh", {"refresh": refresh}, format="json"
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=racer) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) == [200] + [401] * (RACERS - 1)
