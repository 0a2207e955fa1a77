"""What a RunPython function does to which model's rows, read from its code with `ast` (nothing is run).

A data migration is graded by the rows it changes, not by the models it names: `Locale.objects.create()` writes one
row, `Page.objects.filter(translation_key__isnull=True).iterator()` with `.save()` rewrites every row that predates a
new column. Models are followed through `apps.get_model()` (string literals, closure variables and module
constants), querysets kept in variables, `for` loops that save or delete, and plain functions the model is passed to
(two levels deep). What cannot be seen is said, never guessed: a model passed where the code is not readable is
"unknown".
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from collections.abc import Callable, Iterator

ModelKey = tuple[str, str]

# Queryset methods that keep every row of the model in the set.
_KEEPS_ALL = {
    "objects", "all", "iterator", "only", "defer", "select_related", "prefetch_related", "order_by", "using",
    "values", "values_list", "_base_manager", "_default_manager", "select_for_update", "distinct", "annotate",
}  # fmt: skip
_WRITES_SET = {"update", "delete", "bulk_update"}
_WRITES_FEW = {"create", "get_or_create", "update_or_create", "bulk_create"}
_SAVES = {"save", "delete"}
_MAX_DEPTH = 2


@dataclasses.dataclass(frozen=True)
class DataUse:
    """One way the function changes a model's rows.

    `scope`: "all" (every row, or every row that predates a new column: `__isnull=True` filters), "filtered" (the
    rows a filter selects: known only at run time), "unknown" (the model goes where the code cannot be read).
    """

    model: ModelKey
    scope: str
    how: str


class _Reader:
    def __init__(self, code: Callable, resolve_model: Callable[[str], ModelKey | None]):
        self.resolve_model = resolve_model
        self.values = _visible_values(code)

    def literal(self, node: ast.expr):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.values.get(node.id)
        return None

    def model_of_get_model(self, node: ast.expr) -> ModelKey | None:
        """Return the model of `apps.get_model("app", "Model")` / `apps.get_model("app.Model")`."""
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get_model"):
            return None
        parts = [self.literal(arg) for arg in node.args]
        if len(parts) == 1 and isinstance(parts[0], str) and "." in parts[0]:
            parts = parts[0].split(".", 1)
        if len(parts) == 2 and all(isinstance(part, str) for part in parts):
            return self.resolve_model(f"{parts[0]}.{parts[1]}")
        return None


def _visible_values(code: Callable) -> dict:
    """Closure variables and module globals the function can see (to resolve model strings and helpers)."""
    values = dict(getattr(code, "__globals__", {}))
    closure = getattr(code, "__closure__", None) or ()
    for name, cell in zip(code.__code__.co_freevars, closure, strict=False):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    return values


def _function_node(code: Callable) -> ast.FunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(code))
    except (OSError, TypeError):
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == code.__name__:
            return node
    return None


def _chain(node: ast.expr) -> tuple[str | None, list[tuple[str, ast.Call | None]]]:
    """Split `Root.a.b(...).c(...)` into ("Root", [("a", None), ("b", call), ("c", call)])."""
    steps: list[tuple[str, ast.Call | None]] = []
    while True:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            steps.append((node.func.attr, node))
            node = node.func.value
        elif isinstance(node, ast.Attribute):
            steps.append((node.attr, None))
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id, list(reversed(steps))
        else:
            return None, []


def _only_new_rows(call: ast.Call) -> bool:
    """Tell whether every lookup of a filter is `field__isnull=True`: the rows that predate a new column (all)."""
    if call.args or not call.keywords:
        return False
    return all(
        k.arg is not None and k.arg.endswith("__isnull") and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def _scope(steps: list[tuple[str, ast.Call | None]]) -> str:
    for name, call in steps:
        if name in ("filter", "exclude"):
            if not (name == "filter" and call is not None and _only_new_rows(call)):
                return "filtered"
        elif name not in _KEEPS_ALL and name not in _WRITES_SET:
            return "filtered"
    return "all"


def _shown(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 90 else f"{text[:87]}..."


def _saves_in(body: list[ast.stmt]) -> bool:
    for statement in body:
        for node in ast.walk(statement):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _SAVES:
                return True
    return False


def _uses(reader: _Reader, function: ast.FunctionDef, bound: dict[str, ModelKey], depth: int) -> Iterator[DataUse]:
    models = dict(bound)
    querysets: dict[str, tuple[ModelKey, list]] = {}

    def rooted(node: ast.expr) -> tuple[ModelKey, list] | None:
        root, steps = _chain(node)
        if root in models:
            return models[root], steps
        if root in querysets:
            model, earlier = querysets[root]
            return model, earlier + steps
        return None

    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if (model := reader.model_of_get_model(node.value)) is not None:
                models[name] = model
            elif (found := rooted(node.value)) is not None and found[1]:
                querysets[name] = found
    for node in ast.walk(function):
        if isinstance(node, ast.For) and (found := rooted(node.iter)) is not None and _saves_in(node.body):
            model, steps = found
            yield DataUse(model, _scope(steps), f"for ... in {_shown(node.iter)}: saves each row")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            found = rooted(node)
            if found is None or not found[1]:
                continue
            model, steps = found
            last = steps[-1][0]
            if last in _WRITES_SET:
                yield DataUse(model, _scope(steps), _shown(node))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            for position, argument in enumerate(node.args):
                if isinstance(argument, ast.Name) and argument.id in models:
                    yield from _passed(reader, node.func.id, position, models[argument.id], depth)


def _passed(reader: _Reader, name: str, position: int, model: ModelKey, depth: int) -> Iterator[DataUse]:
    """Follow a model passed to a plain function: what that function does with it, or "unknown"."""
    helper = reader.values.get(name)
    node = _function_node(helper) if callable(helper) and depth < _MAX_DEPTH else None
    if node is None or position >= len(node.args.args):
        yield DataUse(model, "unknown", f"passed to {name}(), whose code is not read")
        return
    inner = _Reader(helper, reader.resolve_model)
    for use in _uses(inner, node, {node.args.args[position].arg: model}, depth + 1):
        yield dataclasses.replace(use, how=f"{name}(): {use.how}")


def data_uses(code: Callable, resolve_model: Callable[[str], ModelKey | None]) -> list[DataUse] | None:
    """Return how `code` changes rows, per model; None when its source cannot be read."""
    node = _function_node(code)
    if node is None:
        return None
    return list(_uses(_Reader(code, resolve_model), node, {}, 0))


def sql_texts(code: Callable) -> list[str]:
    """Return the string literals the function passes to `.execute(...)` (cursor or schema editor)."""
    node = _function_node(code)
    if node is None:
        return []
    return [
        call.args[0].value
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "execute"
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    ]
