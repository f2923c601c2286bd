"""A ``SESSION_ENGINE`` whose database can't be reached: every load fails as Django's
database backend does when PostgreSQL is restarting (``OperationalError``)."""

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import OperationalError


class SessionStore(DatabaseSessionStore):
    def load(self):
        raise OperationalError("connection refused: the database is down")
