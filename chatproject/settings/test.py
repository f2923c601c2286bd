"""Settings for the test suite: the base settings with fast hashing and isolated storage."""

import os
import tempfile

from .base import *  # noqa: F403
from .base import CACHES, CHANNEL_LAYERS, DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = tempfile.mkdtemp(prefix="chat-test-media-")

# Parallel CI runs may share one Redis: keep each run's keys apart.
_run = os.environ.get("TEST_RUN_ID", str(os.getpid()))
if "KEY_PREFIX" in CACHES["default"]:
    CACHES["default"]["KEY_PREFIX"] = f"chat-test-{_run}"
if "CONFIG" in CHANNEL_LAYERS["default"]:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"chat-test-{_run}"
REALTIME_PREFIX = f"chat-test-{_run}"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"chat-test-{_run}.sqlite3")
    }
