"""``manage.py deactivate_user <username>...``: ban users from a shell, as the admin does.

Through ``user_deactivate``: each user's refresh tokens are revoked, their access tokens
refused, and their open connections on every worker closed.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import user_deactivate


class Command(BaseCommand):
    help = "Deactivate (ban) users: refuse their tokens and close their open connections."

    def add_arguments(self, parser) -> None:
        parser.add_argument("usernames", nargs="+", metavar="username")

    def handle(self, *args, usernames: list[str], **options) -> None:
        found = {u.username: u for u in get_user_model().objects.filter(username__in=usernames)}
        missing = [name for name in usernames if name not in found]
        if missing:
            raise CommandError(f"No such user: {', '.join(missing)}. Nobody was deactivated.")
        for name in dict.fromkeys(usernames):
            user_deactivate(user=found[name])
            self.stdout.write(f"Deactivated {name}: tokens refused, connections closed.")
