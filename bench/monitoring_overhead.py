"""Throughput cost of monitoring on a DB-bound endpoint (issue: query performance monitoring).

Three gunicorn servers (2 workers x 4 gthreads, production settings, native pool) run side by side and are
loaded in interleaved rounds with wrk -c32 on `/bench/select-one`:
  bare               no monitoring at all
  dbops              dbops' query timer + request middleware (the default)
  django-prometheus  django-prometheus' middleware + PostgreSQL engine wrapper, dbops' off
Target: dbops >= 0.95x bare. Run: .venv/bin/python bench/monitoring_overhead.py [--rounds 8] [--seconds 5]
"""

from __future__ import annotations

import contextlib

from harness import median, parser, postgres, server_environ, setup_django

from tests.parts.servers import gunicorn, interleaved

CONDITIONS = {
    "bare": {"DBOPS_QUERY_MONITORING": "false"},
    "dbops": {"DBOPS_QUERY_MONITORING": "true"},
    "django-prometheus": {
        "DBOPS_QUERY_MONITORING": "false",
        "DBOPS_PROMETHEUS_REQUEST_METRICS": "true",
        "DATABASE_ENGINE": "django_prometheus.db.backends.postgresql",
    },
}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seconds", type=float, default=5, help="Load duration per condition per round.")
    args = p.parse_args()
    rounds, seconds = (1, 1) if args.smoke else (args.rounds, args.seconds)
    with postgres() as url:
        setup_django()
        with contextlib.ExitStack() as stack:
            bases = {
                name: stack.enter_context(gunicorn(server_environ(url, DJANGO_ROOT_URLCONF="bench.urls", **extra)))
                for name, extra in CONDITIONS.items()
            }
            rps, errors, tool = interleaved(bases, "/bench/select-one", rounds=rounds, seconds=seconds)
    print(f"monitoring overhead: {rounds} interleaved rounds x {seconds:g} s, load by {tool}, gunicorn 2x4 gthread")
    for name in CONDITIONS:
        # Paired per-round ratios: each round's conditions ran back to back, so machine drift cancels.
        ratios = [value / bare for value, bare in zip(rps[name], rps["bare"], strict=True)]
        rounds_text = " ".join(f"{v:.0f}" for v in rps[name])
        print(
            f"  {name:<18} median {median(rps[name]):8.1f} req/s  ratio {median(ratios):5.3f}x bare"
            f"  errors {errors[name]:.0f}  rounds: {rounds_text}"
        )


if __name__ == "__main__":
    main()
