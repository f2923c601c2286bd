"""``manage.py sweep_streams``: end the LLM streams whose worker died, for cron.

The server sweeps a stream whenever someone looks at it (its status or metrics, a
``session:join`` of its session, an SSE follower); this catches the ones nobody looks at, so
their answers and rows do not say "running" for ever.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from llm.models import Stream
from llm.services.stream_sweeper import streams_sweep


class Command(BaseCommand):
    help = (
        "Fail every LLM stream whose worker died (its slot in the shared state expired), "
        "keeping the text so far and telling its room (stream:error). Safe to run at any "
        "time, e.g. from cron every few minutes. Needs REDIS_URL: without it the running "
        "streams are in the server's memory, which this process can't see."
    )

    def handle(self, *args, **options):
        if not settings.REDIS_URL:
            raise CommandError(
                "REDIS_URL is not set: the running streams live in the server process's "
                "memory, where this command can't see them. The server sweeps them itself "
                "(status reads, session:join, SSE followers)."
            )
        swept = streams_sweep()
        ended = [stream for stream in swept if stream.status in Stream.FINAL]
        self.stdout.write(
            f"{len(swept)} stream(s) marked running: {len(ended)} had lost their worker and "
            f"are ended now, {len(swept) - len(ended)} still running."
        )
