"""The profanity filter on message text (better-profanity), in the mode ``PROFANITY_FILTER``
sets: ``censor`` masks words, ``reject`` refuses the message, ``off`` leaves it alone."""

from __future__ import annotations

from better_profanity import profanity
from django.conf import settings

from chatproject.errors import DomainError

profanity.load_censor_words()


def content_clean(text: str) -> tuple[str, bool]:
    """The text to store and whether the filter found anything (flagged for moderators)."""
    mode = settings.PROFANITY_FILTER
    if mode == "off":
        return text, False
    # better-profanity's own contains_profanity() is a censor-and-compare: censor once.
    censored = profanity.censor(text)
    if censored == text:
        return text, False
    if mode == "reject":
        raise DomainError("CONTENT_REJECTED", "The message contains words that are not allowed.")
    return censored, True
