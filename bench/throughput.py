"""DB-bound endpoint throughput by connection strategy, whole dbops stack on (issue: load test and benchmarks).

Three gunicorn servers (the Dockerfile's command: 2 workers x 4 gthreads, production settings, dbops' middleware,
query monitoring and breaker on) serve `/bench/select-one`, differing only in how they get a connection:
  pool        Django's native psycopg pool
  new         a new connection per request (CONN_MAX_AGE=0, no pool)
  persistent  persistent connections (CONN_MAX_AGE=600, no pool)
Loaded in interleaved rounds with wrk -c32 (or the Python loader). Targets: pool >= 9x new, >= 0.90x persistent.
--auth scram (default) connects as a password role checked with scram-sha-256, as production servers do;
--auth trust keeps the throwaway cluster's trust authentication (the cheapest possible connect).
Run: .venv/bin/python bench/throughput.py [--rounds 8] [--seconds 5] [--auth scram|trust]
"""

from __future__ import annotations

import contextlib
import re

from harness import median, parser, postgres_cluster, server_environ, setup_django

from tests.parts.servers import gunicorn, interleaved

MODES = ("pool", "new", "persistent")
BENCH_ROLE, BENCH_PASSWORD = "bench_app", "bench-only-password"  # noqa: S105 - a throwaway cluster's role


def password_role(cluster, url: str) -> str:
    """Create a login role checked with scram-sha-256 over TCP; return the URL that uses it."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(f"CREATE ROLE {BENCH_ROLE} LOGIN SUPERUSER PASSWORD '{BENCH_PASSWORD}'")
    hba = cluster.data_dir / "pg_hba.conf"
    hba.write_text(f"host all {BENCH_ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    return re.sub(r"://postgres(:[^@]*)?@", f"://{BENCH_ROLE}:{BENCH_PASSWORD}@", url)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seconds", type=float, default=5, help="Load duration per condition per round.")
    p.add_argument("--auth", choices=("scram", "trust"), default="scram", help="How the servers authenticate.")
    args = p.parse_args()
    rounds, seconds = (1, 1) if args.smoke else (args.rounds, args.seconds)
    with postgres_cluster() as (url, cluster):
        setup_django()
        auth = args.auth if cluster is not None else "trust (BENCH_DATABASE_URL)"
        if cluster is not None and args.auth == "scram":
            url = password_role(cluster, url)
        with contextlib.ExitStack() as stack:
            bases = {
                mode: stack.enter_context(
                    gunicorn(
                        server_environ(
                            url,
                            DJANGO_ROOT_URLCONF="bench.urls",
                            DJANGO_SETTINGS_MODULE="bench.connection_settings",
                            BENCH_CONNECTION_MODE=mode,
                        )
                    )
                )
                for mode in MODES
            }
            cpu: dict[str, list[float]] = {}
            rps, errors, tool = interleaved(bases, "/bench/select-one", rounds=rounds, seconds=seconds, cpu=cpu)
    print(
        f"throughput by connection strategy: {rounds} interleaved rounds x {seconds:g} s, load by {tool}, "
        f"2x4 gthread, {auth} authentication"
    )
    for mode in MODES:
        rounds_text = " ".join(f"{v:.0f}" for v in rps[mode])
        print(
            f"  {mode:<11} median {median(rps[mode]):8.1f} req/s  {median(cpu[mode]) * 1e6:6.0f} CPU us/request"
            f"  errors {errors[mode]:.0f}  rounds: {rounds_text}"
        )
        print(f"  {'':<11} CPU us/request by round: {' '.join(f'{v * 1e6:.0f}' for v in cpu[mode])}")
    for other in ("new", "persistent"):
        # Paired per-round ratios: each round's conditions ran back to back, so machine drift cancels.
        ratios = [pool / value for pool, value in zip(rps["pool"], rps[other], strict=True) if value]
        print(f"  ratio pool/{other:<10} {median(ratios):6.2f}x (median of paired rounds)")
    # Requests per CPU second, paired per round: the host's dips slow a round but do not make it cost more CPU.
    per_cpu = [persistent / pool for pool, persistent in zip(cpu["pool"], cpu["persistent"], strict=True) if pool]
    print(f"  ratio pool/persistent   {median(per_cpu):6.3f}x requests per CPU second (median of paired rounds)")


if __name__ == "__main__":
    main()
