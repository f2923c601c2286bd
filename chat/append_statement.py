"""A session append written as one PostgreSQL statement: the seqs, the rows that carry them
and the logged events, in one round trip.

In a transaction a send is five round trips in a row (``BEGIN``, the seq ``UPDATE``, the
message ``INSERT``, the event ``INSERT``, ``COMMIT``), and a worker runs every one of them in
its one database thread (docs/scaling.md). As one statement with data-modifying ``WITH``
parts, run in autocommit, it is one round trip and atomic by itself:

* ``taken`` is the seq statement (``chat.events.seq_statement``), which also checks the
  sender's membership; every ``INSERT`` selects ``FROM taken``, so when it finds no row (not
  a member, no session) nothing is written;
* a row's ``seq`` is an expression of the seq it took, and so is the ``seq`` written into
  its JSON columns at the paths given (an event's frame carries its seq);
* the foreign keys between the new rows are checked at the statement's end (Django makes
  them ``DEFERRABLE INITIALLY DEFERRED``), when all of them exist.

Values are cast to their columns' types: in ``INSERT ... SELECT`` a parameter has no
column to take its type from.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.db import connections, models, transaction

from .events import Allocated

_TAKEN = "taken"
_LAST = f"{_TAKEN}.last_seq"


class Row(NamedTuple):
    """A model instance to insert. With ``seq`` (the index of one of the seqs taken, from
    0), its ``seq`` column gets that seq, and so does each of its JSON columns named in
    ``seq_in``, at each path given (a path is a tuple of keys)."""

    instance: models.Model
    seq: int | None = None
    seq_in: dict[str, tuple[tuple[str, ...], ...]] = {}


class Increment(NamedTuple):
    """``field`` of the ``model`` row ``pk`` goes up by ``by``, if the seqs are taken."""

    model: type[models.Model]
    pk: Any
    field: str
    by: int


def append_execute(
    *,
    seq_sql: str,
    seq_params: list,
    count: int,
    rows: Sequence[Row],
    increments: Sequence[Increment] = (),
) -> Allocated | None:
    """Run the seq statement, the inserts and the increments as one statement; the seqs
    taken and the members, or None if the seq statement found no row (and nothing was
    written). The instances get their seqs, and their JSON documents the seq at the paths
    given."""
    connection = transaction.get_connection()
    parts = [f"{_TAKEN} AS ({seq_sql})"]
    params = list(seq_params)
    by_model: dict[type[models.Model], list[Row]] = {}
    for row in rows:
        by_model.setdefault(type(row.instance), []).append(row)
    for n, (model, model_rows) in enumerate(by_model.items()):
        parts.append(f"insert_{n} AS ({_insert(model, model_rows, count, params, connection)})")
    for n, increment in enumerate(increments):
        parts.append(f"increment_{n} AS ({_increment(increment, params, connection)})")
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT last_seq, members FROM {_TAKEN}", params)
        found = cursor.fetchone()
    if found is None:
        return None
    allocated = Allocated.of(*found, count=count)
    for row in rows:
        # Stored, as ``bulk_create`` leaves its instances: a later ``save`` updates them.
        row.instance._state.adding = False
        row.instance._state.db = connection.alias
        if row.seq is not None:
            _place_seq(row, allocated.seqs[row.seq])
    return allocated


def _insert(model, rows: list[Row], count: int, params: list, connection) -> str:
    """``INSERT ... SELECT`` of the rows, one ``SELECT ... FROM taken`` each."""
    quote = connection.ops.quote_name
    columns = _columns(model, connection.alias, rows[0].instance.pk is None)
    selects = []
    for row in rows:
        values = [
            _value_sql(field, cast, row, count, params, connection) for field, cast in columns
        ]
        selects.append(f"SELECT {', '.join(values)} FROM {_TAKEN}")
    names = ", ".join(quote(field.column) for field, _cast in columns)
    return f"INSERT INTO {quote(model._meta.db_table)} ({names}) {' UNION ALL '.join(selects)}"


def _value_sql(field, cast: str, row: Row, count: int, params: list, connection) -> str:
    """One value of a row: a parameter cast to its column's type, or the seq it took."""
    offset = None if row.seq is None else count - 1 - row.seq
    if offset is not None and field.attname == "seq":
        return f"{_LAST} - {offset}"
    params.append(field.get_db_prep_save(_value(field, row.instance), connection))
    sql = cast
    for path in row.seq_in.get(field.attname, ()) if offset is not None else ():
        params.append(list(path))
        sql = f"jsonb_set({sql}, CAST(%s AS text[]), to_jsonb({_LAST} - {offset}))"
    return sql


def _increment(increment: Increment, params: list, connection) -> str:
    quote = connection.ops.quote_name
    meta = increment.model._meta
    table, column = quote(meta.db_table), quote(meta.get_field(increment.field).column)
    params += [increment.by, meta.pk.get_db_prep_value(increment.pk, connection)]
    return (
        f"UPDATE {table} SET {column} = {column} + %s"
        f" FROM {_TAKEN} WHERE {table}.{quote(meta.pk.column)} = %s"
    )


def row_prepare(instance: models.Model) -> None:
    """Give a new instance the values its insert will write (its ``auto_now`` timestamps),
    so that it can be rendered before the statement runs."""
    for field in instance._meta.concrete_fields:
        field.pre_save(instance, True)


def _value(field, instance: models.Model):
    # A prepared instance keeps the timestamps it was rendered with.
    value = getattr(instance, field.attname)
    return field.pre_save(instance, True) if value is None else value


@functools.cache
def _columns(model: type[models.Model], alias: str, pk_unset: bool) -> tuple[tuple[Any, str], ...]:
    """The columns an insert writes, each with its parameter cast to the column's type:
    every concrete one, but a primary key the database numbers itself. Worked out once per
    model: the types took half the time of building a send's statement."""
    connection = connections[alias]
    return tuple(
        (field, f"CAST(%s AS {field.db_type(connection)})")
        for field in model._meta.concrete_fields
        if not (field.primary_key and field.db_returning and pk_unset)
    )


def _place_seq(row: Row, seq: int) -> None:
    instance = row.instance
    if hasattr(instance, "seq"):
        instance.seq = seq
    for name, paths in row.seq_in.items():
        document = getattr(instance, name)
        for path in paths:
            target = document
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = seq
