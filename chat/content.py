"""The profanity filter on message text (better-profanity), in the mode ``PROFANITY_FILTER``
sets: ``censor`` masks words, ``reject`` refuses the message, ``off`` leaves it alone."""

from __future__ import annotations

import functools
from collections import defaultdict

from better_profanity import Profanity
from django.conf import settings

from chatproject.errors import DomainError

# Distinct words remembered per process; a chat's vocabulary mostly repeats.
REMEMBERED_WORDS = 65536


class RememberedWordset(list):
    """better-profanity's word list, answering ``word in wordset`` from memory.

    better-profanity tests every word of a message, and every run of the words after it,
    with ``in`` against its ~900 words, each a ``VaryingString`` compared character by
    character in Python: about 37 ms for a 15-word message, most of a send's time in the
    worker's one database thread. The answer depends on the string alone, so it is kept;
    a new string is compared only with the words of its length (better-profanity's
    substitutions are one character for one, so every variant is as long as its word).

    It stands in for the library's public ``CENSOR_WORDSET``, which better-profanity only
    ever asks ``text in wordset``. tests/chat/test_content.py pins it against the installed
    version: the same words as the library loads, the same answers, one-character
    substitutions, and the same censored text.
    """

    def __init__(self, words) -> None:
        super().__init__(words)
        by_length = defaultdict(list)
        for word in self:
            by_length[len(str(word))].append(word)
        self._by_length = dict(by_length)
        self._contains = functools.lru_cache(maxsize=REMEMBERED_WORDS)(self._compare)

    def _compare(self, text: str) -> bool:
        return any(word == text for word in self._by_length.get(len(text), ()))

    def __contains__(self, text) -> bool:
        return self._contains(text)


profanity = Profanity()
profanity.load_censor_words()
profanity.CENSOR_WORDSET = RememberedWordset(profanity.CENSOR_WORDSET)


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
