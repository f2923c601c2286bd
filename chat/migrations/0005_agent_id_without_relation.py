"""Sessions and messages name their agent by id only: ``agent`` (a foreign key to
``llm.Agent``) becomes ``agent_id`` (a plain, indexed UUID), so the chat app has no relation
to the LLM app that depends on it.

The column keeps its name, type, values and index: in the database only the foreign-key
constraint goes (PostgreSQL drops it in place; SQLite copies the table once, as for any
change of a column's constraint). The model state changes field, not column. Deleting an
agent now clears these ids in ``llm.services.agents`` instead of ``ON DELETE SET NULL``.
"""

from django.db import migrations, models
from django.db.models.deletion import SET_NULL


def _without_relation(model_name: str, help_text: str) -> migrations.SeparateDatabaseAndState:
    return migrations.SeparateDatabaseAndState(
        database_operations=[
            migrations.AlterField(
                model_name=model_name,
                name="agent",
                field=models.ForeignKey(
                    "llm.agent",
                    on_delete=SET_NULL,
                    null=True,
                    blank=True,
                    db_constraint=False,
                    related_name="+",
                ),
            ),
        ],
        state_operations=[
            migrations.RemoveField(model_name=model_name, name="agent"),
            migrations.AddField(
                model_name=model_name,
                name="agent_id",
                field=models.UUIDField(blank=True, db_index=True, help_text=help_text, null=True),
            ),
        ],
    )


class Migration(migrations.Migration):
    dependencies = [("chat", "0004_message_search_vector")]

    operations = [
        _without_relation("chatsession", "The room's default agent, if any."),
        _without_relation("message", "The agent that wrote it, if any."),
    ]
