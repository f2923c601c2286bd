"""``llm`` depends on ``chat``, never the reverse: no chat model has a relation to an LLM
model (sessions and messages name their agent by id only), so chat's tables stand without
the LLM app. Imports are checked by import-linter (``lint-imports``, in ``scripts/test``)."""

from pathlib import Path

from django.apps import apps

import chat.models


def _app_label(target) -> str | None:
    """The app of a relation's target: a model class, or an ``"app.Model"`` string that is
    not resolved yet."""
    if target is None:
        return None
    if isinstance(target, str):
        return target.partition(".")[0] if "." in target else "chat"
    return target._meta.app_label


def test_no_chat_model_has_a_relation_to_an_llm_model():
    to_llm = []
    for model in apps.get_app_config("chat").get_models():
        for field in model._meta.get_fields():
            # Reverse relations (auto-created) are other apps pointing at chat: allowed.
            if not field.is_relation or field.auto_created:
                continue
            remote = field.remote_field
            targets = (field.related_model, remote.model, getattr(remote, "through", None))
            if "llm" in {_app_label(target) for target in targets}:
                to_llm.append(f"{model.__name__}.{field.name}")
    assert to_llm == []


def test_chat_models_name_no_llm_model_even_as_a_string():
    source = Path(chat.models.__file__).read_text()
    assert '"llm.' not in source and "'llm." not in source
