"""Django's PostgreSQL backend, whose psycopg pool checks each connection it hands out
with ``check_pooled_connection``.

psycopg_pool's own check (``ConnectionPool.check_connection``, which Django installs for
``CONN_HEALTH_CHECKS``) sends an empty query: a round trip for every connection taken, and in
Channels that is every ``database_sync_to_async`` call, each of which waits for it.

An idle connection's socket tells the same without a round trip: a server that restarted,
crashed or ended the backend (``pg_terminate_backend``) has closed the socket or written its
error to it, so the socket has something to read. Only then is psycopg's check made, which
fails and makes the pool replace the connection. An idle connection of a healthy server has
nothing to read (the platform does not ``LISTEN`` on pooled connections). What neither check
sees in time is a server host gone without closing anything: the empty query would wait for
it as long as a real one does.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


def check_pooled_connection(conn) -> None:
    """Raise if ``conn`` is closed or its server has said anything since it was last used."""
    poller = select.poll()
    # ``fileno`` raises for a closed connection; ``poll`` (not ``select``) takes any fd number,
    # and a worker holding thousands of sockets has numbers past 1024.
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        # Django gives the pool psycopg's check (``CONN_HEALTH_CHECKS``) or none, and no
        # setting of ours reaches that argument; set before the pool first opens.
        if pool is not None and pool._check is None:
            pool._check = check_pooled_connection
        return pool
