"""The package's shape: one home per capability, imports one way, nothing from the reference project."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

import dbops

pytestmark = pytest.mark.pure

PACKAGE_DIR = Path(dbops.__file__).parent
CAPABILITIES = (
    "conf",
    "database",
    "health",
    "breaker",
    "monitoring",
    "alerting",
    "backups",
    "migrations_safety",
    "insights",
    "replication",
    "dashboard",
    "management",
)


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text())
    return found


def imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def is_shell(module: str) -> bool:
    """Commands, admin, views, URLs, middleware and the AppConfig: the thin layer over the services."""
    parts = module.split(".")
    return parts[-1] in ("admin", "views", "urls", "apps", "middleware") or "management" in parts


def capability(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_architecture__every_capability_has_a_package_that_says_what_it_owns():
    for name in CAPABILITIES:
        package = importlib.import_module(f"dbops.{name}")
        assert package.__doc__ and len(package.__doc__.strip()) > 40, f"dbops.{name} needs an __init__ docstring"


def test_architecture__capabilities_import_each_other_without_cycles():
    graph: dict[str, set[str]] = {}
    for module, tree in modules().items():
        for target in imported(tree):
            if target.startswith("dbops.") and capability(target) != capability(module):
                graph.setdefault(capability(module), set()).add(capability(target))
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        pytest.fail(f"capabilities import each other in a cycle: {error.args[1]}")


def test_architecture__services_never_import_the_shells():
    known = modules()
    offenders = [
        f"{module} imports {target}"
        for module, tree in known.items()
        if not is_shell(module)
        for target in imported(tree)
        if target in known and is_shell(target)
    ]
    assert offenders == []


def reads_environment(tree: ast.Module) -> bool:
    """Tell whether code reads a variable: os.environ[...], os.environ.get(...), os.getenv(...).

    Handing the environment on to a child process ({**os.environ, ...}) is not reading settings.
    """
    for node in ast.walk(tree):
        target = node.value if isinstance(node, ast.Subscript) else node.func if isinstance(node, ast.Call) else None
        text = ast.unparse(target) if target is not None else ""
        if text in ("os.environ", "os.environ.get", "os.getenv", "os.environ.setdefault"):
            return True
    return False


def test_architecture__nothing_imports_the_reference_project_or_reads_the_environment_outside_conf():
    for module, tree in modules().items():
        assert not any(name == "project" or name.startswith("project.") for name in imported(tree)), module
        if capability(module) != "conf":
            assert not reads_environment(tree), module


def test_architecture__every_module_imports():
    for info in pkgutil.walk_packages(dbops.__path__, "dbops."):
        importlib.import_module(info.name)
