"""The REST doors' JSON parser: DRF's, with a nesting limit.

DRF's ``JSONParser`` turns a decoding ``ValueError`` into a 400 but lets the ``RecursionError``
of a deeply nested body through as a 500, before any view or authentication has run. This
parser answers both, and any body nested deeper than ``MAX_JSON_DEPTH``, with ``ParseError``:
the exception handler makes it the contract's 400 ``VALIDATION_ERROR``.
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from .json_depth import TOO_DEEP_MESSAGE, nested_too_deep


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(TOO_DEEP_MESSAGE) from exc
        if nested_too_deep(data):
            raise ParseError(TOO_DEEP_MESSAGE)
        return data
