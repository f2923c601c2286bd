"""Settings for benchmark workers: the local (environment-driven) settings as they are, with
one change that only touches account creation.

Benchmarks register hundreds of users over REST before measuring; Django's default PBKDF2
hasher costs about half a second of CPU per register/token call on this class of machine,
which would dominate the set-up time and measures nothing a benchmark is about. Nothing on
the WebSocket path hashes passwords (sockets authenticate with JWTs).
"""

from chatproject.settings.local import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
