"""The Prometheus side: the alerting rules pass promtool, and every metric they and the Grafana dashboard use exists."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from prometheus_client import REGISTRY

from dbops.insights import metrics as insight_metrics  # noqa: F401 - registers the insight gauges
from dbops.monitoring import metrics  # noqa: F401 - registers dbops' collectors
from tests import PROJECT_DIR
from tests.tiers import require_tool

pytestmark = pytest.mark.system

RULES_DIR = PROJECT_DIR / "ops" / "prometheus"
DASHBOARD = PROJECT_DIR / "ops" / "grafana" / "dashboard.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}


def promtool() -> str:
    found = shutil.which("promtool") or str(PROJECT_DIR / "var" / "tools" / "promtool")
    require_tool(
        "promtool", how="make test extracts it from Debian's prometheus package", found=os.access(found, os.X_OK)
    )
    return found


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60, check=False)


def test_promtool__rules_are_valid():
    result = run("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout


def test_promtool__every_alert_fires_on_its_series_and_not_on_a_healthy_system():
    result = run("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (RULES_DIR / "alerts_test.yml").read_text()))
    declared = set(re.findall(r"- alert: (\w+)", (RULES_DIR / "alerts.yml").read_text()))
    assert tested == declared


def exported_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("dbops_"):
            names.update(f"{family.name}{suffix}" for suffix in SUFFIXES.get(family.type, ("",)))
    return names


@pytest.mark.pure
def test_rules_and_dashboard_only_use_metrics_dbops_exports():
    exported = exported_names()
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = set(re.findall(r"\bdbops_\w+", " ".join(expressions) + (RULES_DIR / "alerts.yml").read_text()))
    assert used and used <= exported, sorted(used - exported)
    assert len(dashboard["panels"]) >= 8
