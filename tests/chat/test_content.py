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


def test_the_remembered_wordset_is_what_the_installed_better_profanity_loads(plain):
    remembered = content.profanity.CENSOR_WORDSET

    assert isinstance(remembered, RememberedWordset)
    assert [str(word) for word in remembered] == [str(word) for word in plain.CENSOR_WORDSET]


def test_every_substitution_of_the_installed_better_profanity_is_one_character(plain):
    # What lets the remembered wordset compare a string only with the words of its length.
    assert {len(variant) for variants in plain.CHARS_MAPPING.values() for variant in variants} == {
        1
    }


def test_the_remembered_wordset_answers_like_the_library_for_every_word_and_a_variant(plain):
    def variant(word: str) -> str:
        return "".join(plain.CHARS_MAPPING.get(char, (char,))[-1] for char in word)

    candidates = [str(word) for word in plain.CENSOR_WORDSET]
    candidates += [variant(word) for word in candidates] + [word + "s" for word in candidates[::8]]

    assert [text in content.profanity.CENSOR_WORDSET for text in candidates] == [
        text in plain.CENSOR_WORDSET for text in candidates
    ]


def test_a_remembered_wordset_is_still_the_word_list(plain):
    wordset = RememberedWordset(plain.CENSOR_WORDSET)
    assert len(wordset) == len(plain.CENSOR_WORDSET)
    assert "shit" in wordset and "sh1t" in wordset
    assert "hello" not in wordset


def test_censor_mode_masks_and_flags(settings):
    settings.PROFANITY_FILTER = "censor"
    assert content_clean("that is a shit idea") == ("that is a **** idea", True)
    assert content_clean("a fine idea") == ("a fine idea", False)
