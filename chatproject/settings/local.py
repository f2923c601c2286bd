"""Settings for running on a developer's machine: the base settings as they are."""

from .base import *  # noqa: F403
