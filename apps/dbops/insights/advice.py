"""I011: an index for a top statement, advised only when the planner proves it would use it (Dexter's method).

For each of the costliest statements (pg_stat_statements), PostgreSQL's own parser (pglast) names the columns
its WHERE, JOIN and ORDER BY compare, per table; each column and each pair led by an equality column is a
candidate, unless an existing index already leads with it. The statement is prepared and its generic plan
explained (`plan_cache_mode = force_generic_plan`, every parameter NULL: PostgreSQL 15 has no EXPLAIN
GENERIC_PLAN) without, then with every candidate as a hypothetical index (hypopg: nothing is built, only this
session's planner sees them). An index is advised when the planner uses it and the estimated cost drops by
`DBOPS_INSIGHTS_INDEX_SAVING_PERCENT`. Nothing runs: EXPLAIN without ANALYZE, in a savepoint rolled back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import psycopg
from pglast import ast, parse_sql
from pglast.parser import ParseError
from psycopg import sql

from dbops.conf.config import InsightsConfig
from dbops.insights.findings import INFO, WARN, Raw
from dbops.insights.statements import statement_statistics, top_statement_rows

COMPARISONS = frozenset({"=", "<", ">", "<=", ">="})
MAX_CANDIDATES = 12  # hypothetical indexes per statement
HOW_TO_INSTALL = "apt install postgresql-15-hypopg (or your platform's hypopg package); then CREATE EXTENSION hypopg"


class _Rollback(Exception):
    """Leave the advice's savepoint: its prepared statement and hypothetical indexes go with it."""


def _tables(node, found: dict) -> None:
    """Map each FROM item's name or alias to (schema, table)."""
    if isinstance(node, ast.RangeVar):
        found[node.alias.aliasname if node.alias else node.relname] = (node.schemaname, node.relname)
    elif isinstance(node, ast.JoinExpr):
        _tables(node.larg, found)
        _tables(node.rarg, found)


def _column(node, tables: dict) -> tuple[tuple[str | None, str], str] | None:
    """Return ((schema, table), column) of a column reference whose table is certain, else None."""
    if not isinstance(node, ast.ColumnRef) or not all(isinstance(f, ast.String) for f in node.fields or ()):
        return None
    names = [f.sval for f in node.fields or ()]
    if len(names) == 2 and names[0] in tables:
        return tables[names[0]], names[1]
    if len(names) == 1 and len(tables) == 1:
        return next(iter(tables.values())), names[0]
    return None


def _predicates(node, tables: dict) -> Iterator[tuple[tuple, str, str]]:
    """Yield (table, column, "eq" or "range") for each comparison of a column in a WHERE or JOIN condition."""
    if isinstance(node, ast.BoolExpr):
        for arg in node.args or ():
            yield from _predicates(arg, tables)
    elif isinstance(node, ast.A_Expr) and node.name and isinstance(node.name[-1], ast.String):
        operator = node.name[-1].sval  # "x IN (...)" is "=" too
        if operator not in COMPARISONS:
            return
        kind = "eq" if operator == "=" else "range"
        for side in (node.lexpr, node.rexpr):
            found = _column(side, tables)
            if found:
                yield found[0], found[1], kind


def _columns(stmt) -> dict[tuple, dict[str, list[str]]]:
    """Per table: the columns compared for equality, by range, and sorted on, in the order they appear."""
    tables: dict[str, tuple[str | None, str]] = {}
    conditions = []
    if isinstance(stmt, ast.SelectStmt):
        for item in stmt.fromClause or ():
            _tables(item, tables)
        conditions.append(stmt.whereClause)
        stack = list(stmt.fromClause or ())
        while stack:
            item = stack.pop()
            if isinstance(item, ast.JoinExpr):
                conditions.append(item.quals)
                stack += [item.larg, item.rarg]
    elif isinstance(stmt, ast.UpdateStmt | ast.DeleteStmt):
        _tables(stmt.relation, tables)
        conditions.append(stmt.whereClause)
    by_table: dict[tuple, dict[str, list[str]]] = {}
    for condition in conditions:
        for table, column, kind in _predicates(condition, tables) if condition is not None else ():
            columns = by_table.setdefault(table, {"eq": [], "range": [], "sort": []})[kind]
            columns.append(column) if column not in columns else None
    for sort in getattr(stmt, "sortClause", None) or ():
        found = _column(sort.node, tables)
        if found:
            columns = by_table.setdefault(found[0], {"eq": [], "range": [], "sort": []})["sort"]
            columns.append(found[1]) if found[1] not in columns else None
    return by_table


def candidates(query: str) -> list[tuple[tuple[str | None, str], tuple[str, ...]]]:
    """Return the candidate indexes (table, columns) of one statement; none for what is not one SELECT/UPDATE/DELETE."""
    try:
        statements = parse_sql(query)
    except ParseError:
        return []
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.SelectStmt | ast.UpdateStmt | ast.DeleteStmt):
        return []
    found = []
    for table, kinds in _columns(statements[0].stmt).items():
        eq = kinds["eq"]
        others = list(dict.fromkeys(c for c in kinds["range"] + kinds["sort"] if c not in eq))
        shapes: list[tuple[str, ...]] = [(c,) for c in eq + others]
        shapes += [(a, b) for a in eq for b in eq + others if a != b]
        found += [(table, shape) for shape in shapes]
    return found[:MAX_CANDIDATES]


def _generic_plan(conn, query: str) -> dict:
    """Explain `query`'s generic plan: prepared afresh each time (a cached plan would not see new hypotheses)."""
    conn.execute(sql.SQL("PREPARE dbops_advice AS {}").format(sql.SQL(query)))  # planned, never executed
    try:
        params = conn.execute(
            "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = 'dbops_advice'"
        ).fetchone()[0]
        arguments = sql.SQL("({})").format(sql.SQL(", ").join([sql.SQL("NULL")] * params)) if params else sql.SQL("")
        explain = sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE dbops_advice{}").format(arguments)
        return conn.execute(explain).fetchone()[0][0]["Plan"]
    finally:
        conn.execute("DEALLOCATE dbops_advice")


def _index_names(plan: dict) -> set[str]:
    names = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", ()):
        names |= _index_names(child)
    return names


def _qualified(table: tuple[str | None, str]) -> sql.Composable:
    schema, name = table
    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def _indexed_prefixes(conn, table_oid: int) -> set[tuple[str, ...]]:
    """Return the leading columns of each valid index of a table (a candidate one of them leads with is served)."""
    found = set()
    for (columns,) in conn.execute(
        """
        SELECT array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, pos)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.pos)
        FROM pg_index i WHERE i.indrelid = %s AND i.indisvalid AND i.indexprs IS NULL AND i.indpred IS NULL
        """,
        [table_oid],
    ):
        found |= {tuple(columns[:n]) for n in range(1, len(columns) + 1)}
    return found


def index_name(table: str, columns: tuple[str, ...]) -> str:
    """Django's own shape of an index name (`Index.set_name_with_model`): 30 characters at most, a digest inside."""
    digest = hashlib.md5("_".join([table, *columns]).encode(), usedforsecurity=False).hexdigest()[:6]
    return f"{table.rpartition('.')[2][:11]}_{columns[0][:7]}_{digest}_idx"


def _advise(conn, hypopg: str, query: str, saving: float) -> list[dict]:
    """Return what the planner proves for one statement: [{table, columns, before, after}] (empty: nothing)."""
    shapes = []
    for table, columns in candidates(query):
        oid = conn.execute("SELECT to_regclass(%s)::oid", [_qualified(table).as_string(conn)]).fetchone()[0]
        if oid is not None and columns not in _indexed_prefixes(conn, oid):
            shapes.append((table, columns))
    if not shapes:
        return []
    conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    before = _generic_plan(conn, query)["Total Cost"]
    hypothetical = {}
    for table, columns in shapes:
        statement = sql.SQL("CREATE INDEX ON {} ({})").format(
            _qualified(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        (name,) = conn.execute(
            sql.SQL("SELECT indexname FROM {}.hypopg_create_index(%s)").format(sql.Identifier(hypopg)),
            [statement.as_string(conn)],
        ).fetchone()
        hypothetical[name] = (table, columns)
    plan = _generic_plan(conn, query)
    after = plan["Total Cost"]
    used = [hypothetical[name] for name in _index_names(plan) if name in hypothetical]
    if not used or after > before * (1 - saving):
        return []
    return [{"table": table, "columns": columns, "before": before, "after": after} for table, columns in used]


def index_advice(conn, limits: InsightsConfig) -> list[Raw]:
    """I011: for each top statement, the index hypopg shows the planner would use, cutting its cost enough."""
    schema, _ = statement_statistics(conn)
    if schema is None:
        return []  # I009 says how to enable pg_stat_statements
    rows = top_statement_rows(conn, schema, limits.top_statements)
    if not rows:
        return []
    installed = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'hypopg'"
    ).fetchone()
    if not installed:
        message = "hypopg is not installed: index advice for the top statements (I009) needs hypothetical indexes"
        return [Raw("I011", INFO, "extension hypopg", message, HOW_TO_INSTALL)]
    found = []
    for query, _calls, _total_ms, mean_ms in rows:
        advice: list[dict] = []
        try:
            with conn.transaction():  # a savepoint: SET LOCAL and a failed PREPARE end with it
                advice = _advise(conn, installed[0], query, limits.index_saving_percent / 100)
                raise _Rollback
        except _Rollback:
            pass
        except psycopg.Error:  # noqa: S110 - parameters whose types cannot be inferred, say: no advice
            pass
        finally:  # neither prepared statements nor hypothetical indexes are transactional
            if conn.execute("SELECT 1 FROM pg_prepared_statements WHERE name = 'dbops_advice'").fetchone():
                conn.execute("DEALLOCATE dbops_advice")
            conn.execute(sql.SQL("SELECT {}.hypopg_reset()").format(sql.Identifier(installed[0])))
        text = " ".join(query.split())
        for item in advice:
            schema_name, table = item["table"]
            qualified = f"{schema_name or 'public'}.{table}"
            columns = item["columns"]
            name = index_name(qualified, columns)
            message = (
                f"the planner would use an index on ({', '.join(columns)}): estimated cost {item['before']:,.0f} -> "
                f"{item['after']:,.0f} ({1 - item['after'] / item['before']:.0%} less) for {text[:160]}"
            )
            fix = f"CREATE INDEX CONCURRENTLY {name} ON {qualified} ({', '.join(columns)})"
            detail = {"table": qualified, "columns": list(columns), "index_name": name, "query": text,
                      "cost_before": item["before"], "cost_after": item["after"]}  # fmt: skip
            level = WARN if mean_ms >= limits.slow_statement_ms else INFO
            column = columns[0] if len(columns) == 1 else None
            found.append(Raw("I011", level, f"index on {qualified} ({', '.join(columns)})", message, fix,
                             qualified, column, detail))  # fmt: skip
    return found
