"""Migration ``chat.0005``: sessions and messages keep the agent ids they had when the foreign
keys to ``llm.Agent`` become plain indexed UUIDs, on SQLite and PostgreSQL alike, and the
database no longer ties the column to the LLM app's table."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("chat", "0004_message_search_vector")]
AFTER = [("chat", "0005_agent_id_without_relation")]


def migrate(targets):
    """Migrate the test database to ``targets``; the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.fixture
def before():
    """The models before the migration; the database is migrated to the end afterwards."""
    yield migrate(BEFORE)
    executor = MigrationExecutor(connection)
    migrate(executor.loader.graph.leaf_nodes())


def test_agent_ids_survive_the_migration_and_lose_only_the_foreign_key(before):
    agent = before.get_model("llm", "Agent").objects.create(name="helper")
    user = before.get_model("accounts", "User").objects.create(username="alice")
    session = before.get_model("chat", "ChatSession").objects.create(
        title="general", created_by=user, agent=agent
    )
    without = before.get_model("chat", "ChatSession").objects.create(title="plain")
    message = before.get_model("chat", "Message").objects.create(
        session=session, seq=1, role="assistant", agent=agent
    )

    after = migrate(AFTER)

    sessions = after.get_model("chat", "ChatSession").objects
    assert sessions.get(pk=session.pk).agent_id == agent.pk
    assert sessions.get(pk=without.pk).agent_id is None
    assert after.get_model("chat", "Message").objects.get(pk=message.pk).agent_id == agent.pk
    for table in ("chat_chatsession", "chat_message"):
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, table)
        on_agent = [c for c in constraints.values() if c["columns"] == ["agent_id"]]
        assert [(c["index"], c["foreign_key"]) for c in on_agent] == [(True, None)], table
