"""A file's text, and the passages it is split into for retrieval.

Text files (plain, Markdown, CSV: uploads are typed from their bytes, so all three arrive as
``text/plain``) are read as UTF-8; a PDF's text comes from pypdf, page by page. A file that
can't be read raises ``ExtractionError`` with the reason people are shown.

Passages are about ``PASSAGE_CHARS`` long, cut at a paragraph, line or sentence end where
one is near, and overlap by ``PASSAGE_OVERLAP`` characters so that a sentence cut in two is
whole in one of them.
"""

from __future__ import annotations

import io
import re
from typing import BinaryIO

PDF = "application/pdf"
PASSAGE_CHARS = 1000
PASSAGE_OVERLAP = 150
# Where a passage may end, best first, looked for in its last third.
_BREAKS = ("\n\n", "\n", ". ", " ")
_SPACES = re.compile(r"[ \t\f\v]+")


class ExtractionError(Exception):
    """The file's text can't be read; ``str()`` is the reason, in people's words."""


def extract_text(*, file: BinaryIO, mime_type: str) -> str:
    """The text of an open binary file, by its type; raises ``ExtractionError``. The file is
    read as it is decoded (pypdf seeks in it), not copied whole into memory first."""
    if mime_type == PDF:
        return _pdf_text(file)
    try:
        return io.TextIOWrapper(file, encoding="utf-8-sig").read()
    except UnicodeDecodeError as exc:
        raise ExtractionError("The file is not UTF-8 text.") from exc


def _pdf_text(file: BinaryIO) -> str:
    # Imported here, by the indexing thread that meets a PDF: pypdf is a heavy import, and a
    # worker's start-up (``LlmConfig.ready`` imports this module) has no use for it.
    from pypdf import PdfReader

    try:
        reader = PdfReader(file)
        if reader.is_encrypted:
            raise ExtractionError("The PDF is encrypted.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except ExtractionError:
        raise
    # pypdf raises its own errors (PyPdfError) for a damaged file, and plain ones
    # (ValueError, KeyError, struct.error...) for some: all mean the same to its sender.
    except Exception as exc:
        raise ExtractionError(f"The PDF could not be read ({type(exc).__name__}).") from exc
    return "\n\n".join(page.strip() for page in pages)


def split_passages(
    text: str, *, size: int = PASSAGE_CHARS, overlap: int = PASSAGE_OVERLAP
) -> list[str]:
    """``text`` as passages of at most ``size`` characters, in order (none for blank text)."""
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines())
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    passages: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            end = _break_before(text, start, end)
        passage = text[start:end].strip()
        if passage:
            passages.append(passage)
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
        # Start the overlap at a word, not inside one.
        space = text.find(" ", start, end)
        if 0 <= space < end - 1:
            start = space + 1
    return passages


def _break_before(text: str, start: int, end: int) -> int:
    floor = start + (end - start) * 2 // 3
    for mark in _BREAKS:
        at = text.rfind(mark, floor, end)
        if at >= 0:
            return at + len(mark)
    return end
