"""Checks the web app's page tests make on rendered HTML: nothing loaded from another host,
and nothing a strict Content-Security-Policy would block (inline handlers and scripts)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlparse

URL_ATTRIBUTES = {"src", "href", "action", "poster", "data", "formaction", "srcset"}
INLINE_HANDLER = re.compile(r"^on[a-z]+$")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def tags(html: str) -> list[tuple[str, dict]]:
    collector = _Collector()
    collector.feed(html)
    return collector.tags


def external_urls(html: str, own_hosts=("testserver", "127.0.0.1", "localhost")) -> list[str]:
    """URLs in src/href/... attributes that point at another host (or are protocol-relative)."""
    found = []
    for _, attrs in tags(html):
        for name, value in attrs.items():
            if name not in URL_ATTRIBUTES or not value:
                continue
            for url in value.split(",") if name == "srcset" else [value]:
                url = url.strip().split(" ")[0]
                parsed = urlparse(url)
                if url.startswith("//") or (
                    parsed.scheme in ("http", "https") and parsed.hostname not in own_hosts
                ):
                    found.append(url)
    return found


def csp_violations(html: str) -> list[str]:
    """Inline event handlers, inline style attributes, javascript: URLs and inline scripts
    (a ``<script type="application/json">`` data block is fine: it never runs)."""
    problems = []
    for tag, attrs in tags(html):
        for name, value in attrs.items():
            if INLINE_HANDLER.match(name):
                problems.append(f"<{tag} {name}=...>")
            if name == "style":
                problems.append(f"<{tag} style=...>")
            if name in URL_ATTRIBUTES and (value or "").strip().lower().startswith("javascript:"):
                problems.append(f"<{tag} {name}=javascript:...>")
        if tag == "script" and not attrs.get("src") and attrs.get("type") != "application/json":
            problems.append("inline <script>")
    return problems
