"""Who may read what only an operator should: ``/metrics`` and the checks behind ``/healthz``.

Both tell an attacker too much (the Ollama URL, exception text, traffic by event). A
Prometheus scraper or a monitoring probe sends ``Authorization: Bearer <METRICS_TOKEN>``
(Prometheus: ``authorization: {credentials: ...}`` in the scrape config); a person opens them
in a browser logged in as staff. With ``METRICS_TOKEN`` unset, only staff get in.
"""

from __future__ import annotations

import hmac

from django.conf import settings


def _bearer(request) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


async def operator_allowed(request) -> bool:
    """Whether ``request`` carries ``METRICS_TOKEN`` or comes from an active staff session."""
    expected = settings.METRICS_TOKEN
    presented = _bearer(request)
    if expected and presented is not None:
        return hmac.compare_digest(presented.encode(), expected.encode())
    user = await request.auser()
    return bool(user.is_active and user.is_staff)
