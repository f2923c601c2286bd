"""Finding ``@username`` mentions in a message's text. Pure text work: which members a
text names is decided by the caller's lookup (``chat.services.mentions``).

A mention is ``@`` not preceded by a word character (an e-mail address is not one),
followed by username characters (``[\\w.@+-]``, Django's username alphabet). Its trailing
``.`` and ``-`` are punctuation ("thanks @bob.") unless a member's name ends with them, so
the longest name that matches a member wins. Names match case-insensitively.

Offsets and lengths are counted in UTF-16 code units, as JavaScript indexes strings: a
client highlights ``content.slice(offset, offset + length)`` (the ``@`` included) without
converting anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

MENTION = re.compile(r"(?<!\w)@([\w.@+-]+)")
_TRAILING = ".-"


class Found(NamedTuple):
    """One mention: what the lookup answered for its name, and where it is in the text."""

    member: Any
    offset: int
    length: int


def _spellings(name: str) -> Iterator[str]:
    """``name`` and, longest first, what is left of it without trailing ``.``/``-``."""
    while name:
        yield name
        if name[-1] not in _TRAILING:
            return
        name = name[:-1]


def mention_names(text: str) -> set[str]:
    """Every lowercased name the text could mention: what to look up among the members.
    Empty for a text with no ``@`` (most messages), at no cost."""
    if "@" not in text:
        return set()
    return {
        spelling.lower() for match in MENTION.finditer(text) for spelling in _spellings(match[1])
    }


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def mentions_find(text: str, member_named: Callable[[str], Any]) -> list[Found]:
    """The mentions in ``text``, in text order: each ``@name`` for which ``member_named``
    (given the lowercased name) returns a member, the longest spelling first."""
    found: list[Found] = []
    if "@" not in text:
        return found
    position = offset = 0  # in characters, and the same point in UTF-16 code units
    for match in MENTION.finditer(text):
        for spelling in _spellings(match[1]):
            member = member_named(spelling.lower())
            if member is not None:
                offset += _utf16_length(text[position : match.start()])
                position = match.start()
                found.append(Found(member, offset, 1 + _utf16_length(spelling)))
                break
    return found
