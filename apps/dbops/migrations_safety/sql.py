"""Raw SQL read with PostgreSQL's own parser (pglast: libpg_query), one statement at a time.

Each statement yields what the rules need: the lock it takes on which table (schema-qualified, quoted or not, as
written), whether it rewrites the table, scans it, builds an index or only touches the catalog, and the rule code
its risk maps to. Statements known to be safe carry no code; what the classifier does not know is named by its
parse-node type, never guessed from text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, ConstrType, ObjectType
from pglast.parser import ParseError

ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"


@dataclasses.dataclass(frozen=True)
class Statement:
    """One classified statement.

    `effect`: "rewrite" (the table is copied), "scan" (every row is read under the lock), "build" (an index is
    built), "data" (rows are changed), "catalog" (only the catalog changes) or "none".
    `code`: the rule its risk maps to ("" when it is known to be safe); `unknown`: the parse-node type when the
    classifier does not know the statement.
    """

    text: str
    kind: str
    table: str | None = None
    lock: str = ""
    effect: str = "none"
    code: str = ""
    column: str | None = None
    concurrent: bool = False
    unknown: str = ""
    detail: str = ""
    functions: tuple[str, ...] = ()  # functions a column DEFAULT calls (volatile ones make it a rewrite)


# Statements that change no table's data or structure under a lock worth grading.
_HARMLESS = (
    ast.VariableSetStmt,  # SET lock_timeout, statement_timeout, search_path ...
    ast.VariableShowStmt,
    ast.CommentStmt,
    ast.GrantStmt,
    ast.GrantRoleStmt,
    ast.CreateExtensionStmt,
    ast.CreateFunctionStmt,
    ast.CreateSchemaStmt,
    ast.CreateSeqStmt,
    ast.AlterSeqStmt,
    ast.CreateEnumStmt,
    ast.AlterEnumStmt,
    ast.CompositeTypeStmt,
    ast.CreateDomainStmt,
    ast.ViewStmt,
    ast.CreateStmt,  # a new table: nothing reads it yet
    ast.CreateTableAsStmt,
    ast.CreateTrigStmt,
    ast.AlterOwnerStmt,
    ast.AlterFunctionStmt,
    ast.AlterDefaultPrivilegesStmt,
    ast.InsertStmt,  # takes ROW EXCLUSIVE, as every write does
    ast.SelectStmt,  # SELECT set_config(...), a function call
    ast.AlterObjectSchemaStmt,
    ast.CreatePolicyStmt,
    ast.AlterPolicyStmt,
    ast.CreateStatsStmt,
    ast.CreateCastStmt,
    ast.DefineStmt,  # CREATE AGGREGATE / OPERATOR / COLLATION ...
)
# DROP of objects that are not tables or indexes: catalog only.
_HARMLESS_DROPS = {
    ObjectType.OBJECT_FUNCTION,
    ObjectType.OBJECT_PROCEDURE,
    ObjectType.OBJECT_VIEW,
    ObjectType.OBJECT_SEQUENCE,
    ObjectType.OBJECT_TYPE,
    ObjectType.OBJECT_DOMAIN,
    ObjectType.OBJECT_TRIGGER,
    ObjectType.OBJECT_EXTENSION,
    ObjectType.OBJECT_SCHEMA,
    ObjectType.OBJECT_POLICY,
    ObjectType.OBJECT_STATISTIC_EXT,
    ObjectType.OBJECT_MATVIEW,
}
# ALTER TABLE sub-commands that only change the catalog (a brief ACCESS EXCLUSIVE lock at most, no scan).
_CATALOG_COMMANDS = {
    AlterTableType.AT_ColumnDefault,
    AlterTableType.AT_DropNotNull,
    AlterTableType.AT_DropConstraint,
    AlterTableType.AT_SetStatistics,
    AlterTableType.AT_SetOptions,
    AlterTableType.AT_ResetOptions,
    AlterTableType.AT_SetStorage,
    AlterTableType.AT_SetRelOptions,
    AlterTableType.AT_ResetRelOptions,
    AlterTableType.AT_ReplaceRelOptions,
    AlterTableType.AT_EnableTrig,
    AlterTableType.AT_DisableTrig,
    AlterTableType.AT_EnableTrigAll,
    AlterTableType.AT_DisableTrigAll,
    AlterTableType.AT_ReplicaIdentity,
    AlterTableType.AT_ChangeOwner,
    AlterTableType.AT_DropIdentity,
    AlterTableType.AT_AddIdentity,
    AlterTableType.AT_SetIdentity,
    AlterTableType.AT_ClusterOn,
    AlterTableType.AT_DropCluster,
    AlterTableType.AT_EnableRowSecurity,
    AlterTableType.AT_DisableRowSecurity,
}


def _name(relation: ast.RangeVar | None) -> str | None:
    if relation is None:
        return None
    return f"{relation.schemaname}.{relation.relname}" if relation.schemaname else relation.relname


def _dotted(parts) -> str:
    return ".".join(getattr(part, "sval", str(part)) for part in parts)


def split(sql: str) -> list[str]:
    """Split `sql` into its statements as PostgreSQL would (quotes, dollar quotes and comments respected)."""
    from pglast.parser import split as pg_split

    return [statement.strip() for statement in pg_split(sql) if statement.strip()]


def classify(sql: str) -> list[Statement]:
    """Classify every statement of `sql`; SQL the parser refuses is one unknown statement saying why."""
    try:
        raw_statements = parse_sql(sql)
    except ParseError as exc:
        return [Statement(sql.strip(), "unparseable", unknown=f"does not parse ({exc})")]
    texts = split(sql)
    if len(texts) != len(raw_statements):
        texts = [sql.strip()] * len(raw_statements)
    found = []
    for raw, text in zip(raw_statements, texts, strict=True):
        found.extend(_classify(raw.stmt, text))
    return found


def _classify(node, text: str) -> Iterator[Statement]:
    if isinstance(node, ast.IndexStmt):
        yield _index(node, text)
    elif isinstance(node, ast.AlterTableStmt) and node.objtype == ObjectType.OBJECT_TABLE:
        table = _name(node.relation)
        for command in node.cmds or ():
            yield _alter_table_command(command, table, text)
    elif isinstance(node, ast.DropStmt):
        yield _drop(node, text)
    elif isinstance(node, ast.RenameStmt):
        yield _rename(node, text)
    elif isinstance(node, ast.UpdateStmt | ast.DeleteStmt):
        verb = "UPDATE" if isinstance(node, ast.UpdateStmt) else "DELETE"
        yield Statement(text, verb, _name(node.relation), ROW_EXCLUSIVE, "data", code="M017")
    elif isinstance(node, ast.TruncateStmt):
        tables = ", ".join(_name(r) for r in node.relations)
        yield Statement(text, "TRUNCATE", tables, ACCESS_EXCLUSIVE, "data", code="M013", detail="empties the table")
    elif isinstance(node, ast.VacuumStmt):
        yield Statement(text, "VACUUM/ANALYZE", None, SHARE_UPDATE_EXCLUSIVE, "scan")
    elif isinstance(node, ast.ClusterStmt | ast.ReindexStmt):
        kind = "CLUSTER" if isinstance(node, ast.ClusterStmt) else "REINDEX"
        concurrent = kind == "REINDEX" and any(
            getattr(p, "defname", "") == "concurrently" for p in (getattr(node, "params", None) or ())
        )
        if concurrent:
            yield Statement(text, kind, _name(node.relation), SHARE_UPDATE_EXCLUSIVE, "build", concurrent=True)
        else:
            yield Statement(text, kind, _name(node.relation), ACCESS_EXCLUSIVE, "rewrite", code="M003")
    elif isinstance(node, _HARMLESS):
        yield Statement(text, type(node).__name__, effect="catalog")
    else:
        yield Statement(text, type(node).__name__, unknown=type(node).__name__)


def _index(node: ast.IndexStmt, text: str) -> Statement:
    table = _name(node.relation)
    kind = "CREATE UNIQUE INDEX" if node.unique else "CREATE INDEX"
    if node.concurrent:
        return Statement(text, kind, table, SHARE_UPDATE_EXCLUSIVE, "build", concurrent=True)
    return Statement(text, kind, table, SHARE, "build", code="M010" if node.unique else "M005")


def _alter_table_command(command: ast.AlterTableCmd, table: str | None, text: str) -> Statement:
    subtype = command.subtype
    kind = f"ALTER TABLE {subtype.name.removeprefix('AT_')}"
    if subtype == AlterTableType.AT_AddColumn:
        return _add_column(command.def_, table, text)
    if subtype == AlterTableType.AT_AddConstraint:
        return _add_constraint(command.def_, table, text)
    if subtype == AlterTableType.AT_ColumnDefault:
        verb = "SET DEFAULT" if command.def_ is not None else "DROP DEFAULT"
        return Statement(text, f"ALTER COLUMN {verb}", table, ACCESS_EXCLUSIVE, "catalog", column=command.name)
    if subtype == AlterTableType.AT_ValidateConstraint:
        # Reads every row, but under SHARE UPDATE EXCLUSIVE: reads and writes go on.
        return Statement(text, kind, table, SHARE_UPDATE_EXCLUSIVE, "scan", column=command.name)
    if subtype == AlterTableType.AT_SetNotNull:
        return Statement(text, "ALTER COLUMN SET NOT NULL", table, ACCESS_EXCLUSIVE, "scan", "M004", command.name)
    if subtype == AlterTableType.AT_AlterColumnType:
        return Statement(text, "ALTER COLUMN TYPE", table, ACCESS_EXCLUSIVE, "rewrite", "M003", command.name)
    if subtype == AlterTableType.AT_DropColumn:
        return Statement(text, "DROP COLUMN", table, ACCESS_EXCLUSIVE, "catalog", "M011", command.name)
    if subtype in _CATALOG_COMMANDS:
        return Statement(text, kind, table, ACCESS_EXCLUSIVE, "catalog", column=command.name)
    return Statement(text, kind, table, ACCESS_EXCLUSIVE, unknown=kind)


def _add_column(column: ast.ColumnDef, table: str | None, text: str) -> Statement:
    constraints = list(column.constraints or ())
    types = {c.contype for c in constraints}
    name = column.colname
    if ConstrType.CONSTR_GENERATED in types:
        detail = "stored generated column: every row is computed and the table rewritten"
        return Statement(text, "ADD COLUMN", table, ACCESS_EXCLUSIVE, "rewrite", "M023", name, detail=detail)
    default = next((c for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None)
    not_null = ConstrType.CONSTR_NOTNULL in types or ConstrType.CONSTR_PRIMARY in types
    called = tuple(functions_called(default.raw_expr)) if default is not None else ()
    if called:
        # A rewrite only when one of them is volatile: the caller knows the database's functions.
        return Statement(text, "ADD COLUMN", table, ACCESS_EXCLUSIVE, "rewrite", "M002", name, functions=called)
    if not_null and default is None:
        detail = "NOT NULL without a default: fails on a table with rows"
        return Statement(text, "ADD COLUMN", table, ACCESS_EXCLUSIVE, "catalog", "M001", name, detail=detail)
    if ConstrType.CONSTR_UNIQUE in types:
        return Statement(text, "ADD COLUMN", table, ACCESS_EXCLUSIVE, "build", "M010", name)
    if ConstrType.CONSTR_FOREIGN in types:
        return Statement(text, "ADD COLUMN", table, SHARE_ROW_EXCLUSIVE, "scan", "M008", name)
    return Statement(text, "ADD COLUMN", table, ACCESS_EXCLUSIVE, "catalog", column=name)


def functions_called(expression) -> list[str]:
    """Return the lower-case names of the functions an expression calls (e.g. a column DEFAULT)."""
    names = []

    def visit(node) -> None:
        if isinstance(node, ast.FuncCall):
            names.append(node.funcname[-1].sval.lower())
        if isinstance(node, ast.Node):
            for attribute in node:  # a node iterates over its attribute names
                visit(getattr(node, attribute))
        elif isinstance(node, tuple | list):
            for item in node:
                visit(item)

    visit(expression)
    return names


def _add_constraint(constraint: ast.Constraint, table: str | None, text: str) -> Statement:
    contype = constraint.contype
    name = constraint.conname
    not_valid = bool(constraint.skip_validation)
    if contype in (ConstrType.CONSTR_CHECK, ConstrType.CONSTR_FOREIGN):
        code = "M009" if contype == ConstrType.CONSTR_CHECK else "M008"
        lock = ACCESS_EXCLUSIVE if contype == ConstrType.CONSTR_CHECK else SHARE_ROW_EXCLUSIVE
        if not_valid:
            return Statement(text, "ADD CONSTRAINT NOT VALID", table, lock, "catalog", detail=name or "")
        return Statement(text, "ADD CONSTRAINT", table, lock, "scan", code, detail=name or "")
    if contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY):
        if constraint.indexname:  # USING INDEX: the index was built (concurrently) before
            return Statement(text, "ADD CONSTRAINT USING INDEX", table, ACCESS_EXCLUSIVE, "catalog", detail=name or "")
        return Statement(text, "ADD CONSTRAINT", table, SHARE, "build", "M010", detail=name or "")
    if contype == ConstrType.CONSTR_EXCLUSION:
        return Statement(text, "ADD CONSTRAINT EXCLUDE", table, ACCESS_EXCLUSIVE, "build", "M024", detail=name or "")
    return Statement(text, "ADD CONSTRAINT", table, ACCESS_EXCLUSIVE, unknown=f"constraint type {contype.name}")


def _drop(node: ast.DropStmt, text: str) -> Statement:
    kind = f"DROP {node.removeType.name.removeprefix('OBJECT_')}"
    objects = [_dotted(o) if isinstance(o, tuple | list) else str(o) for o in node.objects or ()]
    if node.removeType == ObjectType.OBJECT_INDEX:
        if node.concurrent:
            return Statement(text, kind, None, SHARE_UPDATE_EXCLUSIVE, "catalog", concurrent=True)
        return Statement(text, kind, None, ACCESS_EXCLUSIVE, "catalog", "M007", detail=", ".join(objects))
    if node.removeType == ObjectType.OBJECT_TABLE:
        return Statement(text, kind, ", ".join(objects), ACCESS_EXCLUSIVE, "catalog", "M013")
    if node.removeType in _HARMLESS_DROPS:
        return Statement(text, kind, effect="catalog")
    return Statement(text, kind, unknown=kind)


def _rename(node: ast.RenameStmt, text: str) -> Statement:
    table = _name(node.relation)
    if node.renameType == ObjectType.OBJECT_COLUMN:
        return Statement(text, "RENAME COLUMN", table, ACCESS_EXCLUSIVE, "catalog", "M012", node.subname)
    if node.renameType == ObjectType.OBJECT_TABLE:
        return Statement(text, "RENAME TABLE", table, ACCESS_EXCLUSIVE, "catalog", "M014")
    return Statement(text, f"RENAME {node.renameType.name.removeprefix('OBJECT_')}", table, effect="catalog")
