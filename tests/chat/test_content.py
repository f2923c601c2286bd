"""The profanity filter answers from memory exactly as better-profanity does from scratch."""

import pytest
from better_profanity import Profanity

from chat import content
from chat.content import RememberedWordset, content_clean

TEXTS = [
    "hello everyone, how is the deploy going today?",
    "that is a shit idea",
    "that is a sh1t idea",
    "what the fuuuck",
    "you @ss",
    "5h1t and @$$ and 1700000000.123456",
    "s h i t happens",
    "Shit! SHIT? shit.",
    "classic assessment of the bass section",
    "",
]


@pytest.fixture(scope="module")
def plain():
    filter_ = Profanity()
    filter_.load_censor_words()
    return filter_


@pytest.mark.parametrize("text", TEXTS)
def test_remembered_words_censor_exactly_like_better_profanity(plain, text):
    assert content.profanity.censor(text) == plain.censor(text)
    # Asked again, the answer comes from memory and is still the same.
    assert content.profanity.censor(text) == plain.censor(text)


def test_a_remembered_wordset_is_still_the_word_list(plain):
    wordset = RememberedWordset(plain.CENSOR_WORDSET)
    assert len(wordset) == len(plain.CENSOR_WORDSET)
    assert "shit" in wordset and "sh1t" in wordset
    assert "hello" not in wordset


def test_censor_mode_masks_and_flags(settings):
    settings.PROFANITY_FILTER = "censor"
    assert content_clean("that is a shit idea") == ("that is a **** idea", True)
    assert content_clean("a fine idea") == ("a fine idea", False)
