"""The insight queries: one function per code, each reading the catalog or a statistics view once.

Each takes an open psycopg connection and the thresholds and returns `Raw` findings (table and column names as
PostgreSQL has them); `service` maps them to Django models and orders them. Queries follow what check_postgres
(txn_wraparound, sequence, invalid indexes, ...) and PgHero ask, so their results can be compared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from dbops.conf.config import InsightsConfig
from dbops.insights.advice import index_advice
from dbops.insights.findings import CRITICAL, INFO, MB, TYPE_MAX, WARN, WRAPAROUND, Raw, level_of
from dbops.insights.statements import statement_statistics, top_statement_rows


def transaction_id_age(conn, limits: InsightsConfig) -> list[Raw]:
    """I001: how close the database and its oldest tables are to transaction ID (and MultiXact) wraparound."""
    found = []
    name, xid_age, mxid_age = conn.execute(
        "SELECT datname, age(datfrozenxid), mxid_age(datminmxid) FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    fix = (
        "VACUUM (FREEZE, VERBOSE) the oldest tables below (autovacuum is not keeping up: look for long transactions, "
        "abandoned replication slots or prepared transactions holding the horizon)"
    )
    for kind, age in (("transaction ID", xid_age), ("MultiXact ID", mxid_age)):
        level = level_of(age, limits.xid_age_warn, limits.xid_age_critical)
        if level:
            message = f"{kind} age {age:,}: {age / WRAPAROUND:.1%} of the way to wraparound (writes stop there)"
            found.append(Raw("I001", level, f"database {name}", message, fix, detail={"kind": kind, "age": age}))
    for schema, table, age in conn.execute(
        """
        SELECT n.nspname, c.relname, age(c.relfrozenxid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm', 't') AND age(c.relfrozenxid) >= %s AND n.nspname NOT LIKE 'pg\\_%%'
        ORDER BY 3 DESC LIMIT 10
        """,
        [limits.xid_age_warn],
    ):
        level = level_of(age, limits.xid_age_warn, limits.xid_age_critical) or WARN
        found.append(
            Raw(
                "I001",
                level,
                f"table {schema}.{table}",
                f"transaction ID age {age:,} of its oldest unfrozen row",
                f"VACUUM (FREEZE) {schema}.{table}",
                table=f"{schema}.{table}",
                detail={"age": age},
            )  # fmt: skip
        )
    return found


def sequences(conn, limits: InsightsConfig) -> list[Raw]:
    """I002: a sequence (serial or identity) that has used a set share of the column type it feeds."""
    found = []
    for seq_schema, seq, last, seq_max, table, column, column_type in conn.execute(
        """
        SELECT s.schemaname, s.sequencename, s.last_value, s.max_value, tn.nspname || '.' || t.relname, a.attname,
               format_type(a.atttypid, NULL)
        FROM pg_sequences s
        JOIN pg_class sc ON sc.relname = s.sequencename
        JOIN pg_namespace sn ON sn.oid = sc.relnamespace AND sn.nspname = s.schemaname
        LEFT JOIN pg_depend d ON d.objid = sc.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        LEFT JOIN pg_class t ON t.oid = d.refobjid
        LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
        LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE s.last_value IS NOT NULL
        """
    ):
        limit = min(seq_max, TYPE_MAX.get(column_type, seq_max))
        used = last / limit
        level = level_of(used * 100, limits.sequence_warn_percent, limits.sequence_critical_percent)
        if not level:
            continue
        message = f"{used:.1%} used: {last:,} of {limit:,} ({column_type or 'sequence'} maximum)"
        fix = (
            f"widen {table}.{column} to bigint (AutoField -> BigAutoField, and every foreign key to it)"
            if column_type in ("integer", "smallint")
            else f"ALTER SEQUENCE {seq_schema}.{seq} CYCLE is never right for a key: archive rows or widen the type"
        )
        detail = {"last_value": last, "maximum": limit, "column_type": column_type, "sequence": f"{seq_schema}.{seq}",
                  "table": table, "column": column}  # fmt: skip
        if table and column_type in ("integer", "smallint"):
            detail["key"] = key_facts(conn, table, column)
        found.append(
            Raw("I002", level, f"sequence {seq_schema}.{seq}", message, fix, table=table, column=column, detail=detail)
        )
    return found


def key_facts(conn, table: str, column: str) -> dict:
    """Return what widening `table.column` involves.

    Its rows, identity or serial, its primary key, the other indexes on it and the foreign keys that reference it
    (with their tables' rows).
    """
    oid = conn.execute("SELECT %s::regclass::oid", [table]).fetchone()[0]
    rows, identity = conn.execute(
        "SELECT greatest(c.reltuples, 0)::bigint, a.attidentity <> '' FROM pg_class c "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %s WHERE c.oid = %s",
        [column, oid],
    ).fetchone()
    primary_key = conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s AND contype = 'p'", [oid]
    ).fetchone()
    other_indexes = [name for (name,) in conn.execute(
        """
        SELECT ci.relname FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attname = %s
        WHERE i.indrelid = %s AND NOT i.indisprimary AND a.attnum = ANY(i.indkey)
        """,
        [column, oid],
    )]  # fmt: skip
    referenced_by = [
        {"constraint": name, "table": child, "columns": list(columns), "definition": definition, "rows": child_rows}
        for name, child, columns, definition, child_rows in conn.execute(
            """
            SELECT c.conname, n.nspname || '.' || t.relname,
                   array(SELECT a.attname FROM unnest(c.conkey) k(attnum)
                         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
                   pg_get_constraintdef(c.oid), greatest(t.reltuples, 0)::bigint
            FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE c.contype = 'f' AND c.confrelid = %s
            """,
            [oid],
        )
    ]
    return {
        "rows": rows,
        "identity": identity,
        "primary_key": primary_key[0] if primary_key else None,
        "other_indexes": other_indexes,
        "referenced_by": referenced_by,
    }


def invalid_indexes(conn, limits: InsightsConfig) -> list[Raw]:
    """I003: an index PostgreSQL keeps up to date but never uses (a failed CREATE INDEX CONCURRENTLY)."""
    found = []
    for schema, index, table, definition, columns in conn.execute(
        """
        SELECT n.nspname, ci.relname, n.nspname || '.' || ct.relname, pg_get_indexdef(i.indexrelid),
               array(SELECT a.attname FROM unnest(i.indkey) k(attnum) JOIN pg_attribute a
                     ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
        FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_class ct ON ct.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = ci.relnamespace
        WHERE NOT i.indisvalid AND n.nspname NOT LIKE 'pg\\_%%'
        """
    ):
        rebuild = definition.replace(" INDEX ", " INDEX CONCURRENTLY ", 1)
        fix = f"DROP INDEX CONCURRENTLY {schema}.{index}; then, once the cause is fixed: {rebuild}"
        message = "INVALID: every write maintains it, no query can use it (a CREATE INDEX CONCURRENTLY that failed)"
        detail = {"index": f"{schema}.{index}", "rebuild": rebuild}
        column = columns[0] if len(columns) == 1 else None
        found.append(Raw("I003", WARN, f"index {schema}.{index}", message, fix, table, column, detail))
    return found


_INDEXES = """
SELECT i.indexrelid, n.nspname, ci.relname, n.nspname || '.' || ct.relname, i.indrelid, i.indkey::text,
       CASE WHEN i.indexprs IS NULL THEN '' ELSE pg_get_expr(i.indexprs, i.indrelid) END,
       CASE WHEN i.indpred IS NULL THEN '' ELSE pg_get_expr(i.indpred, i.indrelid) END,
       i.indclass::text, am.amname, i.indisunique, i.indisprimary,
       i.indexrelid IN (SELECT conindid FROM pg_constraint),
       ci.relpages::bigint * current_setting('block_size')::bigint,  -- the statistics' size: no file stat per index
       array(SELECT a.attname FROM unnest(i.indkey) k(attnum) JOIN pg_attribute a
             ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_class ct ON ct.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ci.relnamespace JOIN pg_am am ON am.oid = ci.relam
WHERE i.indisvalid AND n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> 'information_schema'
"""


@dataclasses.dataclass(frozen=True)
class _Index:
    oid: int
    schema: str
    name: str
    table: str
    table_oid: int
    keys: tuple[str, ...]
    expressions: str
    predicate: str
    opclasses: tuple[str, ...]
    method: str
    unique: bool
    primary: bool
    constraint: bool
    size: int
    columns: tuple[str, ...]
    definition: str = ""  # filled for the reported ones only (pg_get_indexdef on 15,000 indexes takes a second)

    @property
    def kept(self) -> bool:
        """Backs a constraint or enforces uniqueness: never the one to drop."""
        return self.unique or self.primary or self.constraint

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def column(self) -> str | None:
        """The column of a one-column index (its Django field, when one maps)."""
        return self.columns[0] if len(self.columns) == 1 and not self.expressions else None

    def raw(self, code: str, message: str, **extra) -> Raw:
        fix = f"DROP INDEX CONCURRENTLY {self.qualified}"
        detail = {"index": self.qualified, "definition": self.definition, "size_bytes": self.size, **extra}
        return Raw(code, WARN, f"index {self.qualified}", message, fix, self.table, self.column, detail)


def _indexes(conn) -> list[_Index]:
    found = []
    for row in conn.execute(_INDEXES):
        oid, schema, name, table, table_oid, keys, exprs, pred, classes, method, *rest = row
        unique, primary, constraint, size, columns = rest
        keys, classes, columns = tuple(keys.split()), tuple(classes.split()), tuple(columns)
        found.append(
            _Index(
                oid,
                schema,
                name,
                table,
                table_oid,
                keys,
                exprs,
                pred,
                classes,
                method,
                unique,
                primary,
                constraint,
                size,
                columns,
            )  # fmt: skip
        )
    return found


def _with_definitions(conn, found: list[tuple[_Index, str, dict]], code: str) -> list[Raw]:
    """Turn (index, message, extra detail) into findings, each with its definition (one query for all)."""
    oids = [index.oid for index, _, _ in found]
    definitions = dict(
        conn.execute("SELECT indexrelid, pg_get_indexdef(indexrelid) FROM pg_index WHERE indexrelid = ANY(%s)", [oids])
    ) if oids else {}  # fmt: skip
    return [
        dataclasses.replace(index, definition=definitions.get(index.oid, "")).raw(code, message, **extra)
        for index, message, extra in found
    ]


def duplicate_indexes(conn, limits: InsightsConfig) -> list[Raw]:
    """I004: an index another one makes redundant: the same definition, or a btree prefix of another btree."""
    found: list[tuple[_Index, str, dict]] = []
    indexes = _indexes(conn)
    by_table: dict[int, list[_Index]] = {}
    for index in indexes:
        by_table.setdefault(index.table_oid, []).append(index)
    for siblings in by_table.values():
        reported = set()
        for index in sorted(siblings, key=lambda i: (i.kept, -i.oid)):  # drop candidates first, newest first
            if index.kept or index.oid in reported:
                continue
            for other in siblings:
                if other.oid == index.oid or other.oid in reported:
                    continue
                same = (index.keys, index.expressions, index.predicate, index.opclasses, index.method) == (
                    other.keys, other.expressions, other.predicate, other.opclasses, other.method)  # fmt: skip
                covered = (
                    index.method == other.method == "btree"
                    and not index.expressions and not other.expressions and not index.predicate
                    and not other.predicate and len(index.keys) < len(other.keys)
                    and other.keys[: len(index.keys)] == index.keys
                    and other.opclasses[: len(index.opclasses)] == index.opclasses
                )  # fmt: skip
                if same or covered:
                    how = "the same as" if same else "covered by the leading columns of"
                    message = f"{how} {other.qualified}: every write maintains both, reads need one"
                    found.append((index, message, {"duplicate_of": other.qualified}))
                    reported.add(index.oid)
                    break
    return _with_definitions(conn, found, "I004")


def unused_indexes(conn, limits: InsightsConfig) -> list[Raw]:
    """I005: an index no query has scanned since the statistics were reset, when they are old enough to tell."""
    age_days = conn.execute(
        "SELECT extract(epoch FROM now() - coalesce(stats_reset, pg_postmaster_start_time())) / 86400 "
        "FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()[0]
    if age_days is None or float(age_days) < limits.unused_index_days:
        return []  # statistics too young to say an index is never used
    scans = dict(conn.execute("SELECT indexrelid, idx_scan FROM pg_stat_user_indexes").fetchall())
    found: list[tuple[_Index, str, dict]] = []
    for index in _indexes(conn):
        if index.kept or scans.get(index.oid, 1) != 0 or index.size < limits.unused_index_min_kb * 1024:
            continue
        message = (
            f"no scan in {float(age_days):.0f} days of statistics; {index.size / MB:,.1f} MB every write maintains"
        )
        found.append((index, message, {"days": float(age_days)}))
    return _with_definitions(conn, found, "I005")


def unindexed_foreign_keys(conn, limits: InsightsConfig) -> list[Raw]:
    """I006: a foreign key whose columns lead no index: deletes on the target scan this table, joins are slow."""
    found = []
    for name, table, columns, rows in conn.execute(
        """
        SELECT c.conname, n.nspname || '.' || t.relname,
               array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(attnum, pos)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.pos),
               greatest(t.reltuples, 0)::bigint
        FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE c.contype = 'f' AND n.nspname NOT LIKE 'pg\\_%%'
          AND greatest(t.reltuples, 0) >= %s
          AND NOT EXISTS (
              SELECT 1 FROM pg_index i
              WHERE i.indrelid = c.conrelid AND i.indisvalid
                AND (string_to_array(i.indkey::text, ' ')::smallint[])[1:array_length(c.conkey, 1)]
                    @> c.conkey
                AND (string_to_array(i.indkey::text, ' ')::smallint[])[1:array_length(c.conkey, 1)]
                    <@ c.conkey
          )
        """,
        [limits.foreign_key_min_rows],
    ):
        columns = list(columns)
        message = f"foreign key {name} ({', '.join(columns)}) has no index: ~{rows:,} rows scanned per parent delete"
        index = f"{table.rpartition('.')[2]}_{'_'.join(columns)}_idx"[:63]
        fix = f"CREATE INDEX CONCURRENTLY {index} ON {table} ({', '.join(columns)})"
        column = columns[0] if len(columns) == 1 else None
        detail = {"columns": columns, "index_name": index, "table": table}
        found.append(Raw("I006", WARN, f"constraint {name}", message, fix, table=table, column=column, detail=detail))
    return found


def autovacuum(conn, limits: InsightsConfig) -> list[Raw]:
    """I007: dead tuples piling up: autovacuum is behind (or blocked by a long transaction)."""
    found = []
    for schema, table, live, dead, last in conn.execute(
        """
        SELECT schemaname, relname, n_live_tup, n_dead_tup,
               greatest(last_vacuum, last_autovacuum)
        FROM pg_stat_user_tables
        WHERE n_dead_tup >= %s AND n_dead_tup::float / greatest(n_live_tup + n_dead_tup, 1) >= %s
        ORDER BY n_dead_tup DESC LIMIT 20
        """,
        [limits.dead_tuples_min, limits.dead_tuple_ratio],
    ):
        ratio = dead / max(live + dead, 1)
        when = f"last vacuumed {last:%Y-%m-%d %H:%M}" if last else "never vacuumed"
        message = f"{dead:,} dead rows ({ratio:.0%} of the table), {when}"
        fix = (
            f"VACUUM (VERBOSE) {schema}.{table}; if it keeps growing, lower its autovacuum_vacuum_scale_factor "
            "and look for long-running transactions"
        )
        found.append(Raw("I007", WARN, f"table {schema}.{table}", message, fix, table=f"{schema}.{table}",
                         detail={"dead": dead, "live": live}))  # fmt: skip
    return found


def replication_slots(conn, limits: InsightsConfig) -> list[Raw]:
    """I008: a replication slot nobody reads, or one holding more WAL than a set size (the disk fills)."""
    found = []
    for slot, kind, active, retained in conn.execute(
        """
        SELECT slot_name, slot_type, active,
               CASE WHEN restart_lsn IS NULL THEN 0
                    ELSE pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                                              ELSE pg_current_wal_lsn() END, restart_lsn) END
        FROM pg_replication_slots
        """
    ):
        retained = int(retained or 0)
        heavy = retained >= limits.slot_retained_mb * MB
        if active and not heavy:
            continue
        level = CRITICAL if heavy else WARN
        state = "inactive" if not active else "active"
        message = f"{kind} slot {state}, holding {retained / MB:,.1f} MB of WAL (the server keeps it until read)"
        fix = f"SELECT pg_drop_replication_slot('{slot}') if nothing will read it again; else start its consumer"
        found.append(Raw("I008", level, f"slot {slot}", message, fix, detail={"retained_bytes": retained}))
    return found


def top_statements(conn, limits: InsightsConfig) -> list[Raw]:
    """I009: the statements that cost the most in total (pg_stat_statements), or how to get them."""
    schema, missing = statement_statistics(conn)
    if schema is None:
        message = "pg_stat_statements is not available: the costliest statements cannot be listed"
        return [Raw("I009", INFO, "extension pg_stat_statements", message, "; then ".join(missing))]
    found = []
    for query, calls, total_ms, mean_ms in top_statement_rows(conn, schema, limits.top_statements):
        level = WARN if mean_ms >= limits.slow_statement_ms else INFO
        text = " ".join(query.split())
        message = f"{total_ms / 1000:,.1f} s in total, {calls:,} calls, {mean_ms:,.1f} ms each: {text[:200]}"
        fix = "EXPLAIN (ANALYZE, BUFFERS) it; an index helps only when the planner would use it (hypopg shows that)"
        found.append(Raw("I009", level, "statement", message, fix, detail={"query": text, "calls": calls,
                                                                           "total_ms": total_ms}))  # fmt: skip
    return found


def cache_hit_ratio(conn, limits: InsightsConfig) -> list[Raw]:
    """I010: too many reads come from disk (or the OS cache) rather than shared_buffers."""
    name, hit, read = conn.execute(
        "SELECT datname, blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    total = hit + read
    if total < limits.cache_min_blocks:
        return []
    ratio = hit / total
    if ratio >= limits.cache_hit_ratio:
        return []
    message = f"cache hit ratio {ratio:.2%} (below {limits.cache_hit_ratio:.2%}) over {total:,} block reads"
    fix = "raise shared_buffers (and the machine's memory), or find the statements that read the most (I009)"
    return [Raw("I010", WARN, f"database {name}", message, fix, detail={"ratio": ratio})]


# The codes graded against a threshold setting: the health check and the alert rules report these; the others
# (invalid, duplicate and unused indexes, unindexed foreign keys, top statements) are housekeeping for the admin
# page and the dashboard (every Django site has auth's FK indexes covered by its unique_together indexes).
THRESHOLD_CODES = ("I001", "I002", "I007", "I008", "I010")

CHECKS: dict[str, Callable] = {
    "I001": transaction_id_age,
    "I002": sequences,
    "I003": invalid_indexes,
    "I004": duplicate_indexes,
    "I005": unused_indexes,
    "I006": unindexed_foreign_keys,
    "I007": autovacuum,
    "I008": replication_slots,
    "I009": top_statements,
    "I010": cache_hit_ratio,
    "I011": index_advice,
}
