"""Log search through the text index, one worker's lines or every worker's.

What a query matches, on both databases alike: lines whose message contains the text as typed,
letters A-Z in either case (`error` finds `ERROR` and `Error`), every other character exactly
(`é` does not find `É`). The text must be at least `MIN_QUERY_CHARS` characters: a trigram
index cannot narrow a shorter one, so it would read every line.

SQLite: the FTS5 trigram index (`db/search_index.py`) proposes candidates by trigrams, newest id
first, and `LIKE` (ASCII-only case folding) decides; lines not indexed yet are read by id range.
PostgreSQL: `ILIKE` under the "C" collation, which folds A-Z only, as SQLite's LIKE does; the GIN
trigram index (built under that collation) narrows the lines when the text is rare, and the
planner walks ids down instead when it is common.
Hits come newest first in the order the server stored them (row id): the order a trigram index
can hand them out in without reading every hit, so a common word answers as fast as a rare one.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select, text

from goliat_monitor.db.queries.common import AnyRow
from goliat_monitor.db.search_index import indexed_through
from goliat_monitor.db.tables import super_studies, workers
from goliat_monitor.errors import BadRequest, NotFound

MIN_QUERY_CHARS = 3
MAX_QUERY_CHARS = 500
WORKER_CANDIDATES = 5_000
"""Most index candidates a one-worker search checks before it reads that worker's own lines."""
FTS_TERMS = 12
"""Most trigrams of the query given to FTS5: a subset still only narrows, `LIKE` decides."""

_ASCII_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

_COLUMNS = "l.id, l.worker_id, l.ord, l.ts, l.log_type, l.message"


@dataclass(frozen=True)
class LogSearch:
    """One search: the text and the filters, `before_id` the row id to continue below."""

    text: str
    log_types: Sequence[str] = ()
    worker_id: str | None = None
    study_id: str | None = None
    before_id: int | None = None
    limit: int = 100


def check_query(text_: str) -> str:
    """The search text, or BadRequest saying why it cannot be searched."""
    if not text_.strip():
        raise BadRequest("q must not be empty")
    if len(text_) < MIN_QUERY_CHARS:
        raise BadRequest(
            f"q must be at least {MIN_QUERY_CHARS} characters: shorter text cannot use the log index"
        )
    if len(text_) > MAX_QUERY_CHARS:
        raise BadRequest(f"q must be at most {MAX_QUERY_CHARS} characters")
    return text_


def like_pattern(text_: str) -> str:
    """`%text%` with LIKE's wildcards escaped (backslash is the escape character)."""
    escaped = text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def fts_query(text_: str) -> str:
    """An FTS5 query for lines holding every trigram of `text_` (at most `FTS_TERMS` of them, spread
    over the text): each trigram quoted as a string, so no character is FTS5 syntax."""
    grams = list(dict.fromkeys(text_[i : i + 3].translate(_ASCII_FOLD) for i in range(len(text_) - 2)))
    if len(grams) > FTS_TERMS:
        step = (len(grams) - 1) / (FTS_TERMS - 1)
        grams = [grams[round(k * step)] for k in range(FTS_TERMS)]
    return " AND ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


def study_exists(conn: Connection, study_id: str) -> None:
    found = conn.execute(
        select(super_studies.c.id).where(super_studies.c.id == study_id, super_studies.c.deleted_at.is_(None))
    ).first()
    if found is None:
        raise NotFound(f"Super study {study_id} not found")


def search_lines(conn: Connection, search: LogSearch) -> list[AnyRow]:
    """Up to `limit + 1` matching lines, newest first: (id, worker_id, ord, ts, log_type, message).

    The one extra row tells the caller there is another page.
    """
    params: dict[str, object] = {"limit": search.limit + 1}
    filters = []
    if search.worker_id is not None:
        params["worker"] = search.worker_id
    if search.log_types:
        filters.append("l.log_type IN :types")
        params["types"] = list(search.log_types)
    if search.study_id is not None:
        filters.append("l.assignment_id IN (SELECT id FROM assignments WHERE super_study_id = :study)")
        params["study"] = search.study_id
    if search.before_id is not None:
        params["before"] = search.before_id
    if conn.dialect.name == "sqlite":
        return _search_sqlite(conn, search, filters, params)
    return _search_postgresql(conn, search, filters, params)


def _run(conn: Connection, sql: str, params: dict[str, object]) -> list[AnyRow]:
    statement = text(sql)
    if "types" in params:
        statement = statement.bindparams(bindparam("types", expanding=True))
    return list(conn.execute(statement, params).all())


def _search_sqlite(
    conn: Connection, search: LogSearch, filters: list[str], params: dict[str, object]
) -> list[AnyRow]:
    params["pattern"] = like_pattern(search.text)
    mark = indexed_through(conn)  # read in the same snapshot as the index itself
    params["mark"] = mark
    # The lines above the mark, not indexed yet: a primary-key range, a few hundred lines.
    # `worker_id || ''` keeps SQLite from walking the worker's whole index for them instead.
    tail = ["l.id > :mark", "l.message LIKE :pattern ESCAPE '\\'", *filters]
    if search.worker_id is not None:
        tail.append("l.worker_id || '' = :worker")
    if search.before_id is not None:
        tail.append("l.id < :before")
    rows = _run(
        conn,
        f"SELECT {_COLUMNS} FROM log_lines l WHERE {' AND '.join(tail)} ORDER BY l.id DESC LIMIT :limit",
        params,
    )
    if len(rows) > search.limit:
        return rows
    params["match"] = fts_query(search.text)
    params["limit"] = search.limit + 1 - len(rows)
    like = ["l.message LIKE :pattern ESCAPE '\\'", *filters]
    if search.worker_id is None:
        # The index, newest id first. CROSS JOIN fixes the order: the index drives, each
        # candidate is one primary-key lookup, and the scan stops at the limit.
        indexed = ["log_search MATCH :match", *like]
        if search.before_id is not None:
            indexed.append("log_search.rowid < :before")
        return rows + _run(
            conn,
            f"SELECT {_COLUMNS} FROM log_search CROSS JOIN log_lines l ON l.id = log_search.rowid"
            f" WHERE {' AND '.join(indexed)} ORDER BY log_search.rowid DESC LIMIT :limit",
            params,
        )
    # One worker: the index's newest `WORKER_CANDIDATES` candidates of every worker, then, if
    # they held too few of this worker's, its own older lines through its index. A text common
    # in other workers' logs but rare in this one costs a bounded scan, not all their hits. The
    # candidates are read once (FTS5 walks a common trigram's whole list for them) and joined
    # as a JSON array, newest first.
    params["cap"] = WORKER_CANDIDATES
    below = " AND rowid < :before" if search.before_id is not None else ""
    candidates = [
        row[0]
        for row in _run(
            conn,
            f"SELECT rowid FROM log_search WHERE log_search MATCH :match{below}"
            " ORDER BY rowid DESC LIMIT :cap",
            params,
        )
    ]
    if not candidates:
        return rows
    params["ids"] = json.dumps(candidates)
    mine = " AND ".join(["l.worker_id = :worker", *like])
    found = _run(
        conn,
        f"SELECT {_COLUMNS} FROM json_each(:ids) AS f CROSS JOIN log_lines l ON l.id = f.value"
        f" WHERE {mine} ORDER BY f.key LIMIT :limit",
        params,
    )
    rows += found
    if len(found) >= params["limit"] or len(candidates) < WORKER_CANDIDATES:  # type: ignore[operator]
        return rows  # enough, or the index has no other candidate
    params["floor"] = candidates[-1]
    params["limit"] = search.limit + 1 - len(rows)
    return rows + _run(
        conn,
        f"SELECT {_COLUMNS} FROM log_lines l WHERE {mine} AND l.id < :floor ORDER BY l.id DESC LIMIT :limit",
        params,
    )


def _search_postgresql(
    conn: Connection, search: LogSearch, filters: list[str], params: dict[str, object]
) -> list[AnyRow]:
    params["pattern"] = like_pattern(search.text)
    where = ['l.message COLLATE "C" ILIKE :pattern', *filters]
    if search.worker_id is not None:
        where.append("l.worker_id = :worker")
    if search.before_id is not None:
        where.append("l.id < :before")
    # Plan for this text, never a cached generic plan: a common word is best found walking ids
    # down, a rare one through the trigram index, and only the text itself tells which.
    conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
    return _run(
        conn,
        f"SELECT {_COLUMNS} FROM log_lines l WHERE {' AND '.join(where)} ORDER BY l.id DESC LIMIT :limit",
        params,
    )


@dataclass(frozen=True)
class SearchPage:
    """One page of `GET /api/logs`: hits newest first, and the workers they came from."""

    hits: list[AnyRow]
    more: bool
    """There are older hits: the oldest hit's cursor continues below it."""
    machines: dict[str, AnyRow]
    """(id, machine_id, machine_label, hostname) of each worker session among the hits."""


def search_page(conn: Connection, search: LogSearch) -> SearchPage:
    """A page of hits across workers (or one worker), with the study checked and the workers named."""
    if search.study_id is not None:
        study_exists(conn, search.study_id)
    hits = search_lines(conn, search)
    more = len(hits) > search.limit
    hits = hits[: search.limit]
    ids = sorted({hit.worker_id for hit in hits})
    machines: dict[str, AnyRow] = {}
    if ids:
        rows = conn.execute(
            select(workers.c.id, workers.c.machine_id, workers.c.machine_label, workers.c.hostname).where(
                workers.c.id.in_(ids)
            )
        ).all()
        machines = {row.id: row for row in rows}
    return SearchPage(hits, more, machines)
