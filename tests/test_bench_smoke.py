"""CI runs a seconds-long smoke of every benchmark: it proves the script works, it measures nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import PROJECT_DIR
from tests.parts.site import url_of_test_database

pytestmark = pytest.mark.system

# A benchmark takes the shared options (harness.parser: --smoke, --rounds); helpers such as patroni.py do not.
BENCHMARKS = sorted(p.name for p in (PROJECT_DIR / "bench").glob("*.py") if "parser(__doc__)" in p.read_text())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("script", BENCHMARKS)
def test_benchmark__smoke_run_prints_its_results(script):
    env = {**os.environ, "BENCH_DATABASE_URL": url_of_test_database()}
    result = subprocess.run(
        [sys.executable, f"bench/{script}", "--smoke"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ratio" in result.stdout, result.stdout
