"""History pages and full-text search over 1,000,000 messages, at the service layer, against
the same SQL sent through psycopg with no ORM.

    python bench/history.py                             # seed, measure, drop the database
    python bench/history.py --write docs/benchmarks.md  # ... and record the numbers
    python bench/history.py --messages 200000 --pages 50 --searches 20 --keep

Seeding: a fresh PostgreSQL database is migrated (``manage.py migrate``), then the chat
tables are filled directly with ``COPY`` through psycopg: users, sessions, memberships,
messages (with thread replies, edits, tombstones and assistant messages), reactions and
attachments; PostgreSQL computes each message's stored search vector (a generated column,
migration 0004) as its row arrives. The messages' words follow a Zipf law over a vocabulary
of common English chat words and a long tail of rarer made-up ones, so full-text search
meets both words found in most messages and words found in a handful. Messages are spread
over the sessions as they would arrive (interleaved in time), so a session's messages are
scattered over the table as they would be in a live database. For speed, the secondary
indexes of the loaded tables are dropped before the load and rebuilt after it from their
own definitions (the migrations' indexes, checked to be the same afterwards), and foreign-
key triggers are off during the load (``session_replication_role = replica``; the generated
rows are consistent by construction). ``SessionEvent`` rows are not seeded: neither history
nor search reads them. Then ``VACUUM (ANALYZE)``.

Measuring: Django is set up in this process on that database (``bench.settings_bench``,
``DEBUG=false``) and ``chat.selectors.message_history`` / ``message_search`` are called
directly, timed around the call (the queries and the model instances): keyset
pages of 50 with a random ``before_seq``, the newest page (no cursor), and searches for
common and rare words. Each call's SQL is recorded as it runs and the same statements, with
the same parameters, are then sent again through psycopg on a connection of their own
(client-side binding, as Django does; rows fetched as tuples): the baseline, whose per
statement timings also show where the time goes. EXPLAIN (ANALYZE, BUFFERS) of the
statements shows the plans. The database is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shlex
import statistics
import sys
import time
import timeit
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import psycopg

if __package__ in (None, ""):  # run as ``python bench/history.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers import (
    ROOT,
    add_service_options,
    fresh_database,
    migrate,
    worker_env,
    write_section,
)

HEADING = "## History and search at scale"
TARGET_PAGE_MS = 6.0
TARGET_SEARCH_MS = 50.0
PAGE = 50
SEARCH_LIMIT = 20
perf = time.perf_counter

# The head of the vocabulary, most frequent first: words of a team's chat.
COMMON_TEXT = """
the i you to a and it is that we for on in this be of can have just not do with are so
will me at was what it's but if my get need see up ok know think about all there can't
yes one no from now today thanks like they go out an how deploy would some when meeting
your let's back tomorrow by fix please time any did review test more check build still
work he she them looks good here new should has been also release branch morning could
issue after call why then great our make done pr update merge which before server who
sure their us only week down code really yet data doing down team team's customer bug
way again try users sorry later night right ticket logs well because never looking hey
channel email sounds api first over last got thing send yeah want try question maybe
staging prod production config docs wait things help error every into down pipeline
lunch coffee friday monday dashboard metrics alert alerts incident rollback hotfix
database migration schema index query cache redis queue worker latency timeout retry
"""
COMMON = COMMON_TEXT.split()
EMOJI = ["👍", "❤️", "😂", "🎉", "👀", "🚀", "🙏", "✅"]


# --- seeding --------------------------------------------------------------------------------


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """The common words, then made-up ones (pronounceable, distinct, 2-4 syllables)."""
    words = list(dict.fromkeys(COMMON))
    seen = set(words)
    onsets = [*"bcdfghjklmnprstvwz", "br", "ch", "cl", "dr", "fl", "gr", "kr", "pl", "pr", "sh"]
    vowels = [*"aeiou", "ai", "ea", "ee", "oo", "ou"]
    codas = ["", "", "n", "r", "s", "l", "t", "nd", "rk", "st"]
    while len(words) < size:
        syllables = rng.choice((2, 2, 3, 3, 4))
        word = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables))
        word += rng.choice(codas)
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@dataclass
class Seeded:
    sessions: list[tuple[uuid.UUID, int]]  # (id, messages), largest first
    words: list[str]
    messages: int = 0
    top_level: dict = field(default_factory=dict)  # session id -> top-level messages
    reactions: int = 0
    attachments: int = 0
    seconds: dict = field(default_factory=dict)  # phase -> seconds
    table_mb: dict = field(default_factory=dict)  # relation -> size in MB
    indexes_same: bool = True


def copy_rows(cur, table: str, columns: str, lines: list[str]) -> None:
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for start in range(0, len(lines), 20_000):
            copy.write("".join(lines[start : start + 20_000]))


def secondary_indexes(cur, tables: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, definition) of the indexes of ``tables`` that no constraint owns."""
    cur.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
          AND NOT EXISTS (
            SELECT 1 FROM pg_constraint c WHERE c.conindid = (quote_ident(i.indexname))::regclass
          )
        ORDER BY i.indexname
        """,
        (list(tables),),
    )
    return cur.fetchall()


def seed(url: str, args) -> Seeded:
    rng = random.Random(args.seed)
    words = vocabulary(args.vocabulary, rng)
    # Zipf's law (exponent 1): the word of rank r has weight 1 / r.
    cum_weights, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1.0 / rank
        cum_weights.append(total)
    count = args.messages
    big = int(count * args.big_share) if args.sessions > 1 else count
    shares = [big] + [(count - big) // (args.sessions - 1)] * (args.sessions - 1)
    shares[-1] += count - sum(shares)
    session_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in shares]
    users = list(range(1, args.users + 1))
    members = {0: users}
    for s in range(1, len(shares)):
        members[s] = rng.sample(users, min(len(users), 20))
    seeded = Seeded(sessions=list(zip(session_ids, shares, strict=True)), words=words)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=365)
    step = timedelta(days=365) / count

    clock = perf()
    with psycopg.connect(url, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # no FK triggers while loading
        cur.execute("SET synchronous_commit = off")
        tables = ("chat_message", "chat_reaction", "chat_attachment")
        indexes = secondary_indexes(cur, tables)
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')

        stamp = start.isoformat()
        cur.execute(
            "INSERT INTO accounts_user (password, is_superuser, username, first_name, "
            "last_name, email, is_staff, is_active, date_joined) "
            "SELECT '!', false, 'hist' || g, '', '', '', false, true, %s "
            "FROM generate_series(1, %s) g",
            (stamp, args.users),
        )
        cur.execute("SELECT min(id) FROM accounts_user")
        first_user = cur.fetchone()[0] - 1  # user i of this script is first_user + i
        for s, session_id in enumerate(session_ids):
            cur.execute(
                "INSERT INTO chat_chatsession (id, title, last_seq, message_count, created_at, "
                "created_by_id) VALUES (%s, %s, 0, 0, %s, %s)",
                (session_id, f"history {s}", stamp, first_user + members[s][0]),
            )
            with cur.copy(
                "COPY chat_membership (role, joined_at, last_seen_seq, last_delivered_seq, "
                "session_id, user_id) FROM STDIN"
            ) as copy:
                for i, user in enumerate(members[s]):
                    role = "owner" if i == 0 else "member"
                    copy.write_row((role, stamp, 0, 0, session_id, first_user + user))

        # The words of every message at once (the costly part), then the rows.
        lengths = [max(1, min(60, int(rng.lognormvariate(2.2, 0.6)))) for _ in range(count)]
        tokens = rng.choices(range(len(words)), cum_weights=cum_weights, k=sum(lengths))
        choose_session = list(range(len(shares)))
        session_of = rng.choices(choose_session, weights=shares, k=count)
        seqs = [0] * len(shares)
        recent: list[list[str]] = [[] for _ in shares]  # recent top-level ids per session
        top_level = [0] * len(shares)
        lines, reactions, attachments = [], [], []
        cursor = 0
        for i in range(count):
            s = session_of[i]
            seqs[s] += 1
            message_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            n = lengths[i]
            text = " ".join(words[t] for t in tokens[cursor : cursor + n])
            cursor += n
            roll = rng.random()
            if roll < 0.01:
                text += "?"
            elif roll < 0.02:
                text += "!"
            created = (start + step * i).isoformat()
            role, author = "user", str(first_user + rng.choice(members[s]))
            if rng.random() < 0.04:
                role, author = "assistant", "\\N"
            parent = "\\N"
            if recent[s] and rng.random() < 0.03:
                parent = rng.choice(recent[s])
            else:
                top_level[s] += 1
                recent[s].append(message_id)
                if len(recent[s]) > 200:
                    del recent[s][:100]
            edited, edited_at, deleted, deleted_at = "f", "\\N", "f", "\\N"
            roll = rng.random()
            if roll < 0.005:
                text, deleted, deleted_at = "", "t", created
            elif roll < 0.025:
                edited, edited_at = "t", created
            lines.append(
                f"{message_id}\t{session_ids[s]}\t{seqs[s]}\t{author}\t{role}\t{text}\t{{}}\t"
                f"{parent}\t0\t{edited}\t{edited_at}\t{deleted}\t{deleted_at}\tf\t"
                f"{created}\t{created}\n"
            )
            if deleted == "f" and rng.random() < 0.03:
                for user in rng.sample(members[s], min(len(members[s]), rng.randint(1, 3))):
                    reactions.append(
                        f"{rng.choice(EMOJI)}\t{created}\t{message_id}\t{first_user + user}\n"
                    )
            if deleted == "f" and rng.random() < 0.005:
                uploader = author if role == "user" else first_user + members[s][0]
                attachments.append(
                    f"{uuid.UUID(int=rng.getrandbits(128), version=4)}\t\\N\treport-{i}.pdf\t"
                    f"https://files.example.com/{i}.pdf\tapplication/pdf\t{rng.randint(1, 10**7)}"
                    f"\t{{}}\t{created}\t{uploader}\t"
                    f"{message_id}\n"
                )
        seeded.seconds["generate"] = perf() - clock
        clock = perf()
        copy_rows(
            cur, "chat_message",
            "id, session_id, seq, author_id, role, content, metadata, parent_id, reply_count, "
            "is_edited, edited_at, is_deleted, deleted_at, is_flagged, created_at, updated_at",
            lines,
        )  # fmt: skip
        copy_rows(cur, "chat_reaction", "emoji, created_at, message_id, user_id", reactions)
        copy_rows(
            cur, "chat_attachment",
            "id, file, file_name, file_url, mime_type, file_size, metadata, created_at, "
            "uploaded_by_id, message_id",
            attachments,
        )  # fmt: skip
        del lines
        cur.execute(
            "UPDATE chat_message m SET reply_count = r.n FROM (SELECT parent_id, count(*) AS n "
            "FROM chat_message WHERE parent_id IS NOT NULL GROUP BY parent_id) r "
            "WHERE m.id = r.parent_id"
        )
        for s, session_id in enumerate(session_ids):
            cur.execute(
                "UPDATE chat_chatsession SET last_seq = %s, message_count = %s, "
                "last_message_at = %s WHERE id = %s",
                (seqs[s], top_level[s], now, session_id),
            )
        seeded.seconds["copy"] = perf() - clock
        clock = perf()
        cur.execute("SET maintenance_work_mem = '1GB'")
        cur.execute("SET max_parallel_maintenance_workers = 2")
        for _, definition in indexes:
            cur.execute(definition)
        seeded.indexes_same = secondary_indexes(cur, tables) == indexes
        conn.commit()
        seeded.seconds["indexes"] = perf() - clock
    clock = perf()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) chat_message, chat_reaction, chat_attachment")
        conn.execute("ANALYZE")
        for relation in ("chat_message", "message_history", "message_content_fts"):
            size = conn.execute("SELECT pg_total_relation_size(%s)", (relation,)).fetchone()[0]
            seeded.table_mb[relation] = size / 2**20
    seeded.seconds["vacuum analyze"] = perf() - clock
    seeded.messages = count
    seeded.top_level = {session_ids[s]: top_level[s] for s in range(len(shares))}
    seeded.reactions = len(reactions)
    seeded.attachments = len(attachments)
    return seeded


def reseeded(url: str, args) -> Seeded:
    """What ``seed`` returned for a database it filled earlier with the same ``--seed`` and
    ``--vocabulary``, read back from that database (the sessions in ``seed``'s order)."""
    words = vocabulary(args.vocabulary, random.Random(args.seed))
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT s.id, (SELECT count(*) FROM chat_message m WHERE m.session_id = s.id) "
            "FROM chat_chatsession s WHERE s.title LIKE 'history %%' "
            "ORDER BY substr(s.title, 9)::int"
        ).fetchall()
        seeded = Seeded(sessions=[(row[0], row[1]) for row in rows], words=words)
        seeded.messages = sum(row[1] for row in rows)
        seeded.top_level = dict(
            conn.execute("SELECT id, message_count FROM chat_chatsession").fetchall()
        )
        seeded.reactions = conn.execute("SELECT count(*) FROM chat_reaction").fetchone()[0]
        seeded.attachments = conn.execute("SELECT count(*) FROM chat_attachment").fetchone()[0]
        for relation in ("chat_message", "message_history", "message_content_fts"):
            size = conn.execute("SELECT pg_total_relation_size(%s)", (relation,)).fetchone()[0]
            seeded.table_mb[relation] = size / 2**20
    return seeded


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Case:
    key: str  # page | latest | common | rare
    label: str
    session: str  # large | small
    orm_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)
    count_ms: list[float] = field(default_factory=list)  # the raw COUNT(*) statement alone
    totals: list[int] = field(default_factory=list)  # ``total`` of each call
    statements: list = field(default_factory=list)  # the first call's (sql, params)
    what_if: str = ""  # not the platform's code: a candidate fix, measured the same way

    @property
    def title(self) -> str:
        return f"{self.label} (what-if: {self.what_if})" if self.what_if else self.label


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


class Recorder:
    """Django's ``execute_wrapper``: keeps each statement and its parameters."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple]] = []

    def __call__(self, execute, sql, params, many, context):
        self.statements.append((sql, tuple(params) if params is not None else ()))
        return execute(sql, params, many, context)


def replay(raw: psycopg.Connection, statements) -> tuple[float, float]:
    """Send the statements again through psycopg: (total ms, the COUNT statement's ms)."""
    count_ms = 0.0
    start = perf()
    with psycopg.ClientCursor(raw) as cur:
        for sql, params in statements:
            began = perf()
            cur.execute(sql, params)
            cur.fetchall()
            if sql.lstrip().upper().startswith("SELECT COUNT(*)"):
                count_ms = (perf() - began) * 1000
    return (perf() - start) * 1000, count_ms


def measure_case(case: Case, calls, raw: psycopg.Connection) -> None:
    from django.db import connection

    for i, call in enumerate(calls):
        recorder = Recorder()
        if i % 2:  # alternate which goes first, so neither always finds a warmer cache
            with connection.execute_wrapper(recorder):
                start = perf()
                page = call()
                orm = (perf() - start) * 1000
            raw_ms, count_ms = replay(raw, recorder.statements)
        else:
            with connection.execute_wrapper(recorder):
                call()  # records the statements (not timed), as the baseline needs them first
            raw_ms, count_ms = replay(raw, recorder.statements)
            start = perf()
            page = call()
            orm = (perf() - start) * 1000
        case.orm_ms.append(orm)
        case.raw_ms.append(raw_ms)
        case.count_ms.append(count_ms)
        case.totals.append(page.total)
        if not case.statements:
            case.statements = recorder.statements


def choose_words(seeded: Seeded, rng: random.Random, n: int) -> tuple[list[str], list[str]]:
    """Common words: the vocabulary's first ``n`` (ranks 1 to n); rare ones: ``n`` drawn
    from rank 3,000 on."""
    return seeded.words[:n], rng.sample(seeded.words[3000:], n)


# A candidate, measured like the service calls; NOT what the platform runs. It keeps to the
# selector's shape (same filters, same capped count, same loading of the page) and
# changes one thing, so the difference is that thing's cost.
RANKED = "best match first among the newest 1,000"


def what_if_search_ranked(session, query: str):
    """``message_search`` with its served matches (the newest ``SEARCH_MATCHES_MAX``)
    ranked by ``ts_rank`` on the stored vector instead of listed newest first: what
    relevance would cost."""
    from django.contrib.postgres.search import SearchRank
    from django.db.models import Subquery

    from chat.message_details import detailed_messages
    from chat.models import Message
    from chat.search import StoredSearchVector, messages_matching, search_query
    from chat.selectors import SEARCH_MATCHES_MAX, Page, messages_with_details

    matched = messages_matching(Message.objects.filter(session=session, is_deleted=False), query)
    total = matched.order_by("-seq")[:SEARCH_MATCHES_MAX].count()
    newest = matched.order_by("-seq").values("pk")[:SEARCH_MATCHES_MAX]
    ordered = (
        detailed_messages()
        .filter(pk__in=Subquery(newest))
        .annotate(rank=SearchRank(StoredSearchVector(), search_query(query)))
        .order_by("-rank", "-seq")
    )
    return Page(messages=messages_with_details(ordered[:SEARCH_LIMIT]), total=total)


# A candidate setting, measured like the platform's own calls; NOT what the platform runs.
BOUND = "server-side binding, prepared from the 6th run"


def use_server_side_binding() -> None:
    """Reconnect Django with ``OPTIONS["server_side_binding"]``: psycopg sends parameters
    apart from the SQL and prepares a statement on its sixth run (its ``prepare_threshold``
    of 5), after which PostgreSQL may stop planning it per call and use one generic plan
    for every parameter."""
    from django.db import connection

    connection.close()
    connection.close_pool()
    connection.settings_dict["OPTIONS"]["server_side_binding"] = True


def measure_bound(label, session, seeded: Seeded, args, rng, raw) -> list[Case]:
    """The large session's random pages and common words again, server-side bound."""
    from chat.selectors import message_history, message_search

    page = Case("page", f"page of {PAGE}, random before_seq", label, what_if=BOUND)
    cursors = [rng.randint(2, session.last_seq + 1) for _ in range(args.pages)]
    measure_case(
        page,
        [lambda c=c: message_history(session=session, limit=PAGE, before_seq=c) for c in cursors],
        raw,
    )
    found = Case("common", "search, common word", label, what_if=BOUND)
    common, _ = choose_words(seeded, rng, args.searches // 2)
    measure_case(
        found,
        [lambda w=w: message_search(session=session, query=w, limit=SEARCH_LIMIT) for w in common],
        raw,
    )
    return [page, found]


def show(cases: list[Case]) -> None:
    for case in cases:
        print(
            f"    {case.title[:60]:<60} ORM p50 {pct(case.orm_ms, 0.5):8.2f} ms  "
            f"p95 {pct(case.orm_ms, 0.95):8.2f} ms   raw p50 {pct(case.raw_ms, 0.5):8.2f}"
            f" ms  COUNT p50 {pct(case.count_ms, 0.5):8.2f} ms",
            flush=True,
        )


def measure_session(label, session, seeded: Seeded, args, rng, raw) -> list[Case]:
    from chat.selectors import message_history, message_search

    def page_before(cursor: int):
        return lambda: message_history(session=session, limit=PAGE, before_seq=cursor)

    def search_for(word: str):
        return lambda: message_search(session=session, query=word, limit=SEARCH_LIMIT)

    page = Case("page", f"page of {PAGE}, random before_seq", label)
    cursors = [rng.randint(2, session.last_seq + 1) for _ in range(args.pages)]
    measure_case(page, [page_before(c) for c in cursors], raw)
    latest = Case("latest", f"newest page of {PAGE} (no cursor)", label)
    newest = lambda: message_history(session=session, limit=PAGE)  # noqa: E731
    measure_case(latest, [newest] * args.latest, raw)
    common, rare = choose_words(seeded, rng, args.searches // 2)
    found = Case("common", "search, common word", label)
    measure_case(found, [search_for(w) for w in common], raw)
    few = Case("rare", "search, rare word", label)
    measure_case(few, [search_for(w) for w in rare], raw)
    cases = [page, latest, found, few]
    if args.what_if:
        for words, base in ((common, found), (rare, few)):
            cases.append(Case(base.key, base.label, label, what_if=RANKED))
            calls = [lambda w=w: what_if_search_ranked(session, w) for w in words]
            measure_case(cases[-1], calls, raw)
    show(cases)
    return cases


def measure(url: str, seeded: Seeded, args) -> list[Case]:
    os.environ.update(
        DATABASE_URL=url, DJANGO_SETTINGS_MODULE="bench.settings_bench", DEBUG="false",
        LOG_LEVEL="WARNING",
    )  # fmt: skip
    for name in ("REDIS_URL", "CHANNEL_LAYER"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from chat.models import ChatSession

    rng = random.Random(args.seed + 1)
    which = [("large", seeded.sessions[0])]
    if len(seeded.sessions) > 1:
        which.append(("small", seeded.sessions[1]))
    cases = []
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as raw:
        for label, (session_id, size) in which:
            session = ChatSession.objects.get(pk=session_id)
            print(f"  {label} session: {size:,} messages", flush=True)
            cases += measure_session(label, session, seeded, args, rng, raw)
        if args.what_if:
            # Last, as it changes the connection of every call after it.
            use_server_side_binding()
            label, (session_id, _) = which[0]
            print(f"  {label} session, {BOUND}", flush=True)
            bound = measure_bound(label, ChatSession.objects.get(pk=session_id), seeded, args,
                                  rng, raw)  # fmt: skip
            show(bound)
            cases += bound
    return cases


def explain(url: str, cases: list[Case]) -> list[tuple[str, str, str]]:
    """EXPLAIN (ANALYZE, BUFFERS) of the first call of some cases: its ``COUNT(*)`` and its
    page of rows. (what, SQL, plan)."""
    picks = [
        c
        for c in cases
        if c.session == "large" and c.key in ("page", "common", "rare") and not c.what_if
    ]
    small = [c for c in cases if c.session == "small" and c.key == "common" and not c.what_if]
    out = []
    with psycopg.connect(url, autocommit=True) as conn, psycopg.ClientCursor(conn) as cur:
        for case, only_count in [(c, False) for c in picks] + [(c, True) for c in small]:
            count = next((st for st in case.statements if is_count(st[0])), None)
            rows = next((st for st in case.statements if not is_count(st[0])), None)
            for kind, statement in (("COUNT", count), ("rows", None if only_count else rows)):
                if statement is None:
                    continue
                text = cur.mogrify(*statement)
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + text)
                plan = "\n".join(row[0] for row in cur.fetchall())
                out.append((f"{case.session} session, {case.title}, {kind}", text, plan))
    return out


def is_count(sql: str) -> bool:
    return sql.lstrip().upper().startswith("SELECT COUNT(*)")


def index_use(plans: list[tuple[str, str, str]]) -> list[str]:
    lines = []
    for what, _, plan in plans:
        used = sorted(set(re.findall(r"Scan(?: Backward)? using (\w+)", plan)))
        used += sorted(set(re.findall(r"Bitmap Index Scan on (\w+)", plan)) - set(used))
        seq_scans = sorted(set(re.findall(r"Seq Scan on (\w+)", plan)))
        lines.append(
            f"- {what}: "
            + (f"{', '.join(f'`{u}`' for u in used)}" if used else "no index")
            + (f"; sequential scan of {', '.join(seq_scans)}" if seq_scans else "")
        )
    return lines


# --- report ---------------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def totals(c: Case) -> str:
    if min(c.totals) < 0:
        return "-"
    return f"{int(statistics.median(c.totals)):,} ({min(c.totals):,}-{max(c.totals):,})"


def table(cases: list[Case]) -> str:
    head = (
        "| session | request | calls | `total`: median (min-max) | ORM p50 ms | ORM p95 ms "
        "| raw SQL p50 ms | raw SQL p95 ms | ORM / raw (p50) | of which COUNT(*) p50 ms |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for c in cases:
        title = f"*{c.title}*" if c.what_if else c.title
        lines.append(
            f"| {c.session} | {title} | {len(c.orm_ms)} | {totals(c)} "
            f"| {pct(c.orm_ms, 0.5):.2f} | {pct(c.orm_ms, 0.95):.2f} | {pct(c.raw_ms, 0.5):.2f} "
            f"| {pct(c.raw_ms, 0.95):.2f} | {ratio(pct(c.orm_ms, 0.5), pct(c.raw_ms, 0.5))} "
            f"| {f'{pct(c.count_ms, 0.5):.2f}' if any(c.count_ms) else '-'} |"
        )
    return "\n".join(lines)


def met(value: float, target: float) -> str:
    return "met" if value <= target else "NOT met"


def verdicts(cases: list[Case]) -> list[str]:
    lines = []
    for session in dict.fromkeys(c.session for c in cases):
        rows = {c.key: c for c in cases if c.session == session and not c.what_if}
        page = pct(rows["page"].orm_ms, 0.5)
        lines.append(
            f"- {session} session, history page of {PAGE} (random `before_seq`): p50 "
            f"{page:.2f} ms, p95 {pct(rows['page'].orm_ms, 0.95):.2f} ms: target p50 <= "
            f"{TARGET_PAGE_MS:.0f} ms {met(page, TARGET_PAGE_MS)}"
        )
        searches = rows["common"].orm_ms + rows["rare"].orm_ms
        both, common, rare = (
            pct(searches, 0.5), pct(rows["common"].orm_ms, 0.5), pct(rows["rare"].orm_ms, 0.5)
        )  # fmt: skip
        lines.append(
            f"- {session} session, search ({len(searches)} queries, common and rare words "
            f"half and half): p50 {both:.2f} ms, p95 {pct(searches, 0.95):.2f} ms: target p50 "
            f"<= {TARGET_SEARCH_MS:.0f} ms {met(both, TARGET_SEARCH_MS)}; common words alone "
            f"p50 {common:.2f} ms ({met(common, TARGET_SEARCH_MS)}), rare words alone p50 "
            f"{rare:.2f} ms ({met(rare, TARGET_SEARCH_MS)})"
        )
    return lines


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def bitmap_rows(plan: str, index: str) -> int | None:
    found = re.search(
        rf"Bitmap Index Scan on {index} .*?actual time=[\d.]+\.\.[\d.]+ rows=(\d+)", plan
    )
    return int(found.group(1)) if found else None


def interpretation(cases: list[Case], plans: list[tuple[str, str, str]]) -> list[str]:
    notes = []
    main = {(c.session, c.key): c for c in cases if not c.what_if}
    sessions = list(dict.fromkeys(c.session for c in cases))
    pages = "; ".join(
        f"{session} {main[(session, key)].label}: {pct(main[(session, key)].raw_ms, 0.5):.1f} ms"
        for session in sessions
        for key in ("page", "latest")
    )
    statements = len(main[(sessions[0], "page")].statements)
    notes.append(
        "- History's `total` is read, not counted: the session's `message_count` (top-level "
        "messages, moved by the `UPDATE` that takes a send's `seq`) or, for a thread, its "
        f"root's `reply_count`. A page is {plural(statements, 'statement')} however large the "
        f"session and wherever the cursor: the page of {PAGE} (an index scan) with its "
        "authors' id and username joined (`select_related`) and each message's reactions "
        "and attachments as arrays of their rows (two correlated `ArraySubquery`s, "
        "`chat/message_details.py`; SQLite reads them in one more statement each, "
        f"`Prefetch(to_attr=)`). Raw SQL p50: {pages}."
    )
    for session in sessions:
        page = main[(session, "page")]
        overhead = pct(page.orm_ms, 0.5) - pct(page.raw_ms, 0.5)
        notes.append(
            f"- ORM overhead, {session} session, page of {PAGE}: {overhead:.1f} ms at p50 "
            f"({ratio(pct(page.orm_ms, 0.5), pct(page.raw_ms, 0.5))} the raw SQL): filtering "
            "the base queryset built once per process and compiling the statement, then "
            f"{PAGE} messages and their authors as model instances, and their reactions and "
            "attachments, read back from their arrays, as model instances in plain lists on "
            "each message."
        )
    for session in sessions:
        common = main[(session, "common")]
        raw, count = pct(common.raw_ms, 0.5), pct(common.count_ms, 0.5)
        notes.append(
            f"- Search for a common word, {session} session: of {raw:.1f} ms (raw SQL, p50), "
            f"the COUNT, which stops at the 1,000th match, takes {count:.1f}; the rest is the "
            f"page, newest first with no ranking (it stops at the {SEARCH_LIMIT}th match), "
            f"and its reactions and attachments."
        )
    notes.append(
        "- The count and the page match on the stored vector (`chat_message.search_vector`, "
        "a generated `tsvector` column, migration 0004; the GIN index `message_content_fts` "
        "is on it): no message text is parsed at query time. Both read the matches newest "
        "first: for a common word the planner walks the session's `message_session_seq` index "
        "down to the 1,000th match, testing each row's stored vector; for a rare word it reads "
        "the matches from the GIN index and sorts them. Among the common words, the less "
        "common cost the COUNT more (a word in one message of ten is tested on some 10,000 "
        "rows), until the planner turns to the GIN index."
    )
    for c in (c for c in cases if c.what_if):
        base = main[(c.session, c.key)]
        target = TARGET_PAGE_MS if c.key in ("page", "latest") else TARGET_SEARCH_MS
        notes.append(
            f"- What-if, {c.session} session, {c.label}, {c.what_if}: ORM p50 "
            f"{pct(c.orm_ms, 0.5):.2f} ms (p95 {pct(c.orm_ms, 0.95):.2f}) against "
            f"{pct(base.orm_ms, 0.5):.2f} ms as the platform runs it: target "
            f"{met(pct(c.orm_ms, 0.5), target)}"
        )
    bound = {c.key: c for c in cases if c.what_if == BOUND}
    if bound:
        changes = ", ".join(
            f"{c.label} {pct(main[(c.session, key)].orm_ms, 0.5):.2f} -> "
            f"{pct(c.orm_ms, 0.5):.2f} ms"
            for key, c in bound.items()
        )
        notes.append(
            "- Server-side binding (Django's `OPTIONS['server_side_binding']`; psycopg "
            f"prepares a statement from its 6th run), ORM p50 as the platform runs -> bound: "
            f"{changes}. Once a statement is "
            "prepared, PostgreSQL may plan it once for every parameter (a generic plan): one "
            "plan for every word, where the best plan for a common word and for a rare one "
            "differ. The platform keeps client-side binding."
        )
    notes.append(
        "- What `total` means (README, OpenAPI schema): for history, the size of the page's "
        "conversation (the timeline, or a thread), tombstones included, whatever the cursors; "
        "for a search, the matches counted up to 1,000 (1,000 means that many or more), and "
        "only the newest 1,000 matches are served."
    )
    if any("Seq Scan on accounts_user" in plan for _, _, plan in plans):
        notes.append(
            "- The sequential scans of `accounts_user` in the plans are the author join "
            "hashing the users table (a few hundred rows here), not a missing index."
        )
    small = next(
        ((what, plan) for what, _, plan in plans if what.startswith("small") and "COUNT" in what),
        None,
    )
    if small is not None:
        read = bitmap_rows(small[1], "message_content_fts")
        found = re.search(r"Aggregate .*?actual time=[\d.]+\.\.[\d.]+ rows=1", small[1])
        session_rows = bitmap_rows(small[1], r"chat_message_session_id_\w+")
        if read is not None and found:
            notes.append(
                f"- The GIN index `message_content_fts` holds every session's messages: in "
                f"the small session's plan below, the common word's bitmap index scan returns "
                f"{read:,} rows, every match in the table, "
                + (
                    f"intersected (`BitmapAnd`) with the session's {session_rows:,} rows from "
                    f"its foreign-key index: a search "
                    if session_rows is not None
                    else "then filtered down to the session: a search "
                )
                + "in a small room pays for the matches of all rooms. A two-column GIN index on "
                "(session_id, the vector) (`btree_gin`) would keep them out."
            )
    return notes


WHAT_IF_COLORS = {RANKED: "C2", BOUND: "C3"}


def plot(cases: list[Case], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no plot")
        return False
    from matplotlib.ticker import FuncFormatter, NullFormatter

    keys = list(dict.fromkeys(c.key for c in cases))
    columns = 2
    rows = (len(keys) + columns - 1) // columns
    fig, grid = plt.subplots(rows, columns, figsize=(11, 4.3 * rows), squeeze=False)
    axes = list(grid.flat)
    for axis in axes[len(keys) :]:
        axis.set_visible(False)
    for axis, key in zip(axes, keys, strict=False):
        for c in (c for c in cases if c.key == key):
            color = WHAT_IF_COLORS.get(c.what_if, "C0" if c.session == "large" else "C1")
            series = [(c.orm_ms, "-", "what-if" if c.what_if else "service (ORM)")]
            if not c.what_if:
                series.append((c.raw_ms, "--", "raw SQL"))
            for values, style, name in series:
                ordered = sorted(values)
                axis.step(
                    ordered, [(i + 1) / len(ordered) for i in range(len(ordered))],
                    where="post", linestyle=style if c.session == "large" or not c.what_if
                    else ":", color=color, label=f"{name}, {c.session}",
                )  # fmt: skip
        target = TARGET_PAGE_MS if key in ("page", "latest") else TARGET_SEARCH_MS
        axis.axvline(target, color="red", linestyle="--", linewidth=1, label="target p50")
        axis.axhline(0.5, color="grey", linewidth=0.5)
        axis.set_ylim(0, 1.02)
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("ms per call (log scale)")
        axis.set_ylabel("share of calls (CDF)")
        label = next(c.label for c in cases if c.key == key)
        fixes = "; ".join(dict.fromkeys(c.what_if for c in cases if c.key == key and c.what_if))
        axis.set_title(label + (f"\nwhat-if: {fixes}" if fixes else ""), fontsize=8)
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def cpu_reference_ms() -> float:
    """A fixed pure-Python loop, best of 5: how fast a core was for this process at the
    time, so that runs on other machines, or under other loads, can be compared."""
    return min(timeit.repeat("sum(range(10**6))", number=1, repeat=5)) * 1000


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import platform as host

    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("django", "psycopg"))
    return (
        f"{os.cpu_count()} cores ({model or host.machine()}), {host.system()} {host.release()}, "
        f"Python {host.python_version()}; {versions}"
    )


def server_facts(url: str) -> str:
    with psycopg.connect(url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("shared_buffers", "work_mem", "effective_cache_size", "random_page_cost")
        }
    return f"PostgreSQL {version} (" + ", ".join(f"{k} {v}" for k, v in settings.items()) + ")"


def section(
    cases, seeded, plans, args, command, started, seconds, load, reference, facts, plot_path
):
    main = {(c.session, c.key): c for c in cases if not c.what_if}
    page_statements = len(main[("large", "page")].statements)
    search_statements = len(main[("large", "common")].statements)
    busy = ""
    if max(load) > 2.0:
        busy = (
            ". The machine was not idle: other processes competed for its two cores (and "
            "for the same PostgreSQL server), so the absolute figures are pessimistic and "
            "vary from run to run; the ORM / raw ratios, measured call by call, are steadier"
        )
    sizes = ", ".join(f"{size:,}" for _, size in seeded.sessions)
    seeding = ", ".join(f"{k} {v:.0f} s" for k, v in seeded.seconds.items())
    tables = ", ".join(f"`{k}` {v:.0f} MB" for k, v in seeded.table_mb.items())
    parts = [
        HEADING,
        "",
        f"{seeded.messages:,} messages in one fresh PostgreSQL database, over "
        f"{len(seeded.sessions)} sessions ({sizes} messages; the large session holds "
        f"{seeded.top_level[seeded.sessions[0][0]]:,} top-level messages, the rest are thread "
        f"replies) and {args.users} users, with {seeded.reactions:,} reactions and "
        f"{seeded.attachments:,} attachments. Words follow a Zipf law over a vocabulary of "
        f"{len(seeded.words):,} (common chat words, then made-up rare ones), 1 to 60 per "
        f"message (median 9); messages of all sessions interleaved in time as they would "
        f"arrive; 3% thread replies, 4% assistant messages, 2% edited, 0.5% tombstones. "
        f"Seeded with `COPY` straight into the chat tables after `migrate` (secondary "
        f"indexes dropped and rebuilt from their own definitions"
        + (", found identical afterwards" if seeded.indexes_same else ", NOT identical after")
        + "; foreign-key triggers off while loading; PostgreSQL fills the generated search "
        "vector column as the rows arrive), then `VACUUM (ANALYZE)`. "
        "`SessionEvent` rows are not seeded: neither history nor search reads them.",
        "",
        "Measured at the service layer: `chat.selectors.message_history` and "
        "`message_search` called in this process (Django on that database, `DEBUG=false`), "
        "timed around the call, which runs the queries and builds the model instances: "
        f"{plural(page_statements, 'statement')} for a page of history (the page, with its "
        "authors, reactions and attachments; its `total` is the counter on the session row "
        f"the caller loaded), {search_statements} for a search (a `COUNT(*)` capped at 1,000 "
        f"matches for `total`, newest first, and the page). Pages: `limit={PAGE}` with a "
        "random `before_seq` "
        f"(keyset, anywhere in the session), and the newest page (no cursor: what opening a "
        f"room asks). Searches: `limit={SEARCH_LIMIT}`, one word each: the vocabulary's "
        f"{args.searches // 2} most frequent words (common) and {args.searches // 2} drawn from "
        f"rank 3,000 on (rare); `total` below says how many messages they matched. Baseline "
        "(`raw SQL`): the very statements each call sent, with the same parameters, sent "
        "again through psycopg on a connection of its own (client-side binding as Django "
        "uses; rows fetched as tuples, no models); the two alternate which runs first. "
        "`of which COUNT(*)`: the raw time of the count statement alone. Rows in *italics* "
        "are what-ifs: a candidate written in this script with the selector's own filters, "
        "capped count and loading, measured the same way; NOT what the platform runs (see "
        "`what_if_search_ranked` and `use_server_side_binding` in bench/history.py).",
        "",
        f"- Machine: {machine()}; {facts}; the database's data fits the OS page cache",
        f"- Command: `{command}`",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; run time {seconds:.0f} s (seeding: {seeding})",
        f"- Load average (1 min) at start and end: {load[0]:.2f} / {load[1]:.2f}{busy}",
        f"- A fixed pure-Python loop (`sum(range(10**6))`, best of 5) took {reference[0]:.1f} "
        f"ms before the measurements and {reference[1]:.1f} ms after them: compare it before "
        "comparing the figures of two runs",
        f"- Sizes: {tables}",
        "",
        table(cases),
        "",
        f"Targets (issue): history page of {PAGE} p50 <= {TARGET_PAGE_MS:.0f} ms; search p50 "
        f"<= {TARGET_SEARCH_MS:.0f} ms.",
        "",
        *verdicts(cases),
        "",
        *interpretation(cases, plans),
        "",
        "Indexes the plans use (EXPLAIN (ANALYZE, BUFFERS) of the first call of each kind, "
        "run after the measurements; the plans are below):",
        "",
        *index_use(plans),
        "",
    ]
    if plot_path is not None and args.write is not None:
        link = os.path.relpath(plot_path.resolve(), args.write.resolve().parent)
        parts += [f"![History and search latency, CDF]({link})", ""]
    parts += ["<details><summary>Query plans</summary>", ""]
    for what, sql, plan in plans:
        parts += [f"{what}:", "", "```sql", sql, "```", "", "```", plan, "```", ""]
    parts += ["</details>", ""]
    return "\n".join(parts)


# --- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument(
        "--big-share", type=float, default=0.5, help="share of the messages in session 1"
    )
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--vocabulary", type=int, default=50_000)
    parser.add_argument("--pages", type=int, default=200, help="random pages per session")
    parser.add_argument("--latest", type=int, default=20, help="newest-page calls per session")
    parser.add_argument("--searches", type=int, default=50, help="queries per session")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-what-if", dest="what_if", action="store_false",
        help="skip the candidate fixes (what-if rows)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the database (print its URL)")
    parser.add_argument(
        "--reuse", metavar="URL",
        help="measure a database an earlier --keep run seeded (same --seed and --vocabulary) "
        "instead of seeding one: to compare two versions of the code on the same rows",
    )  # fmt: skip
    add_service_options(parser, redis=False)
    parser.add_argument(
        "--plot", type=Path, default=ROOT / "docs" / "plots" / "history_latency.png",
        help="where to draw the latency plot (with matplotlib)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not args.postgres_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("--postgres-url: a PostgreSQL URL is needed")

    started = datetime.now(UTC)
    clock = time.monotonic()
    load_start = os.getloadavg()[0]
    if args.reuse:
        url, drop = args.reuse, lambda: None
        args.keep = True
    else:
        url, drop = fresh_database(args.postgres_url, prefix="hist_bench_")
    print(f"history benchmark on {urlparse(url).path.lstrip('/')}", flush=True)
    try:
        if args.reuse:
            seeded = reseeded(url, args)
        else:
            migrate(worker_env(database_url=url, redis_url=None))
            seeded = seed(url, args)
        print(
            f"  seeded {seeded.messages:,} messages: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in seeded.seconds.items()),
            flush=True,
        )
        reference = [cpu_reference_ms()]
        cases = measure(url, seeded, args)
        reference.append(cpu_reference_ms())
        plans = explain(url, cases)
        facts = server_facts(url)
    finally:
        if args.keep:
            print(f"kept the database: {url}")
        else:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            drop()
    seconds = time.monotonic() - clock
    load = (load_start, os.getloadavg()[0])
    print()
    print(table(cases))
    print()
    print("\n".join(verdicts(cases) + interpretation(cases, plans) + index_use(plans)))
    print(f"\nrun time {seconds:.0f} s; load average at start / end {load[0]:.2f} / {load[1]:.2f}")
    print(f"reference loop before / after measuring: {reference[0]:.1f} / {reference[1]:.1f} ms")
    plot_path = args.plot if plot(cases, args.plot) else None
    if plot_path is not None:
        print(f"plot: {plot_path}")
    if args.write:
        command = shlex.join(["python", "bench/history.py", *(argv or sys.argv[1:])])
        text = section(
            cases, seeded, plans, args, command, started, seconds, load, reference, facts,
            plot_path,
        )  # fmt: skip
        write_section(args.write, HEADING, text)
        print(f"wrote the {HEADING[3:]} section of {args.write}")


if __name__ == "__main__":
    main()
