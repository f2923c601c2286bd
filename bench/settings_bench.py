"""Settings for benchmark workers: the local (environment-driven) settings as they are, with
two changes that touch neither the measured path nor its cost.

* A fast password hasher. Benchmarks register hundreds of users over REST before measuring;
  Django's default PBKDF2 hasher costs a large fraction of a second of CPU per register or
  token call, which would dominate the set-up and measures nothing a benchmark is about.
  Nothing on the WebSocket path hashes passwords (sockets authenticate with JWTs).
* The channel layer's and the cache's key prefixes follow ``REALTIME_PREFIX`` (which the
  benchmark sets per run, as the e2e fixtures do). The base settings use the fixed prefix
  ``chat``, so two deployments on one Redis share groups such as ``user-<id>``: a test run
  elsewhere that deactivates its user 5 would close the benchmark's user 5's sockets.
"""

from chatproject.settings.local import *  # noqa: F403
from chatproject.settings.local import CACHES, CHANNEL_LAYERS, REALTIME_PREFIX

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if "CONFIG" in CHANNEL_LAYERS["default"]:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = REALTIME_PREFIX
if "KEY_PREFIX" in CACHES["default"]:
    CACHES["default"]["KEY_PREFIX"] = REALTIME_PREFIX
