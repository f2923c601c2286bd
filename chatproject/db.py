"""Running ORM work from async code in parallel, not in single file.

Channels' ``database_sync_to_async`` is thread-sensitive: every call in a process queues
through one shared thread. That serialises a worker's database work: measured in
``bench/fanout.py``, that thread was 93-100% busy while the event loop idled. Each call
here runs in the loop's thread pool on a thread of its own, with its own connection (handed
back to psycopg's pool, or closed, after the call, as ``database_sync_to_async`` does).

Order still holds where it matters: a consumer handles one frame at a time, so one
connection's writes reach the database in the order they were sent.
"""

from channels.db import database_sync_to_async


def db_async(func):
    """``database_sync_to_async`` on the thread pool instead of the one shared thread."""
    return database_sync_to_async(func, thread_sensitive=False)
