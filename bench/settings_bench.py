"""Settings for benchmark workers: the local (environment-driven) settings as they are, with
two changes that touch neither the measured path nor its cost.

* A fast password hasher. Benchmarks register hundreds of users over REST before measuring;
  Django's default PBKDF2 hasher costs about a quarter of a second of CPU per hash here (two
  per user: register and token), which would dominate the set-up and measures nothing a
  benchmark is about.
  Nothing on the WebSocket path hashes passwords (sockets authenticate with JWTs).
* The channel layer's and the cache's key prefixes follow ``REALTIME_PREFIX``, which the
  benchmark sets per run (as the e2e fixtures do), so nothing else on the same Redis shares
  its groups: with a common prefix, a test run elsewhere that deactivates its user 5 closes
  the benchmark's user 5's sockets (``user-<id>`` groups). The base settings derive these
  prefixes the same way; this keeps the benchmark isolated whatever they do.

With ``BENCH_UNTHROTTLED=1`` in the environment (``bench/fanout.py``'s ``+unthrottled`` variants,
and ``bench/idle.py``, whose users each open hundreds of connections)
every per-user event limit, and the new-connection limit, is raised out of reach, so a run
measures what a worker carries, not what the contract's throttle lets through
(``message:send``: 30 per user per minute).
Nothing else reads that variable; production and tests keep the contract's limits.
"""

import os

from chatproject.settings.local import *  # noqa: F403
from chatproject.settings.local import CACHES, CHANNEL_LAYERS, REALTIME_PREFIX

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if os.environ.get("BENCH_UNTHROTTLED") == "1":
    WS_EVENT_LIMITS = dict.fromkeys(WS_EVENT_LIMITS, 10**9)  # noqa: F405
    WS_THROTTLE_LIMIT = 10**9
    WS_CONNECTION_LIMIT = 10**9

if "CONFIG" in CHANNEL_LAYERS["default"]:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = REALTIME_PREFIX
if "KEY_PREFIX" in CACHES["default"]:
    CACHES["default"]["KEY_PREFIX"] = REALTIME_PREFIX
