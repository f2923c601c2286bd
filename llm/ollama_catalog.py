"""What the Ollama server has: its models (``GET /api/tags``), for ``GET /api/llm/models``.

Names are given as Ollama reads them: a name without a tag is ``name:latest``, so the
default model (``OLLAMA_MODEL``, often written without a tag) and the server's entry for it
are one name, and each model is listed once.

An Ollama that can't be reached is ``LLM_UNAVAILABLE`` (503) naming the address tried, so an
operator sees at once which ``OLLAMA_URL`` is wrong or down.
"""

from __future__ import annotations

import httpx
from django.conf import settings

from chatproject.errors import DomainError

TIMEOUT_S = 5.0


def _unavailable(url: str, why: str) -> DomainError:
    return DomainError(
        "LLM_UNAVAILABLE",
        f"The Ollama server at {url} {why}: start it, or point OLLAMA_URL at one that runs.",
    )


def tagged(name: str) -> str:
    """``name`` with its tag: Ollama reads a model name without one as ``name:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _model(entry: dict) -> dict:
    details = entry.get("details") or {}
    return {
        "name": tagged(entry.get("name") or entry.get("model")),
        "model": tagged(entry.get("model") or entry.get("name")),
        "size": entry.get("size"),
        "modifiedAt": entry.get("modified_at"),
        "family": details.get("family"),
        "parameterSize": details.get("parameter_size"),
        "quantizationLevel": details.get("quantization_level"),
    }


def ollama_models() -> dict:
    """``{models: [...], defaultModel}``: the server's models and ``OLLAMA_MODEL``."""
    url = settings.OLLAMA_URL.rstrip("/")
    try:
        response = httpx.get(f"{url}/api/tags", timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise _unavailable(url, f"can't be reached ({type(exc).__name__})") from exc
    if response.status_code != 200:
        raise _unavailable(url, f"answered {response.status_code}")
    try:
        entries = response.json().get("models") or []
    except (ValueError, AttributeError) as exc:
        raise _unavailable(url, "answered something that is not Ollama's model list") from exc
    models = {}
    # The embedding model (``OLLAMA_EMBED_MODEL``) indexes files; it can't answer.
    embedder = tagged(settings.OLLAMA_EMBED_MODEL)
    for entry in entries:
        if entry.get("name") or entry.get("model"):
            model = _model(entry)
            if model["name"] != embedder:
                models.setdefault(model["name"], model)
    return {"models": list(models.values()), "defaultModel": tagged(settings.OLLAMA_MODEL)}
