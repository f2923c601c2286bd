"""How deep a JSON value nests, without recursion.

Python's ``json`` recurses once per level, so a request of a few KB (``[`` x 3000) raises
``RecursionError`` instead of a parse error (TRAPS), and a value that parses but nests a few
hundred levels fails later: ``orjson.dumps`` stops at 255 levels, so it could be stored and
then never sent. Every JSON door (the REST parser, the SSE view, WebSocket frames) refuses
bodies nested deeper than ``MAX_JSON_DEPTH``; no request of the platform nests more than a
handful of levels.
"""

from __future__ import annotations

MAX_JSON_DEPTH = 64

TOO_DEEP_MESSAGE = f"JSON may nest objects and arrays at most {MAX_JSON_DEPTH} levels deep."


def nested_too_deep(value, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` (decoded JSON) nests objects and arrays more than ``limit`` deep."""
    level = [(value, 1)]
    while level:
        item, depth = level.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        level.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
