"""CPU instructions per request by connection strategy, counted by callgrind: a ratio host noise cannot move.

bench/throughput.py measures requests per second through gunicorn; on this shared 2-core host a round can run at
half speed while its pair does not, so a few-percent difference drowns. Here each strategy serves the same
`/bench/select-one` request through Django's WSGI handler in one process under `valgrind --tool=callgrind`, and
only the requests are counted (collection is switched on and off around them): the same code, inputs and
database give the same count whatever else the machine is doing. The database's own work is in the server
process and not counted; it is the same for every strategy.
  pool         dbops' backend with its pool (the project's configuration)
  django-pool  Django's own PostgreSQL backend with its native pool (what dbops adds to a checkout)
  persistent   no pool, CONN_MAX_AGE=600 (the cost the pool must match)
Run: .venv/bin/python bench/pool_overhead.py [--requests 2000]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import PROJECT_DIR, parser, postgres, setup_django

MODES = ("pool", "django-pool", "persistent")
WARM_UP = 50
SMOKE_WARM_UP = 3  # the smoke proves the callgrind path works; under valgrind each warm-up request costs ~0.1 s


def child(mode: str, requests: int, warm_up: int) -> None:
    """Serve `requests` requests in this process, collection switched on by the parent around them."""
    os.environ.update(
        DJANGO_ROOT_URLCONF="bench.urls",
        DJANGO_SETTINGS_MODULE="bench.connection_settings",
        BENCH_CONNECTION_MODE=mode,
        DJANGO_ALLOWED_HOSTS="*",
    )
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.client import RequestFactory

    handler = WSGIHandler()
    environ = RequestFactory()._base_environ(PATH_INFO="/bench/select-one", REQUEST_METHOD="GET")

    def serve() -> None:
        statuses: list[str] = []
        response = handler(dict(environ), lambda status, headers: statuses.append(status))
        b"".join(response)
        response.close()
        if not statuses[0].startswith("200"):
            raise SystemExit(f"{mode}: {statuses[0]}")

    for _ in range(warm_up):
        serve()
    # Blocked on stdin, this process runs no instructions while the parent switches collection on and off.
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(requests):
        serve()
    print("done", flush=True)
    sys.stdin.readline()


def count(mode: str, requests: int, warm_up: int, out: Path) -> int:
    """Run one strategy's child under callgrind; return the instructions its `requests` requests took."""
    process = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            mode,
            "--requests",
            str(requests),
            "--warm-up",
            str(warm_up),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert process.stdin and process.stdout
    for expected, switch in (("ready", "on"), ("done", "off")):
        line = process.stdout.readline().strip()
        if line != expected:
            process.kill()
            raise SystemExit(f"{mode}: the child said {line!r} instead of {expected!r}")
        subprocess.run(["callgrind_control", "-i", switch, str(process.pid)], check=True, capture_output=True)
        process.stdin.write("go\n")
        process.stdin.flush()
    if process.wait(timeout=600) != 0:
        raise SystemExit(f"{mode}: the child failed")
    return sum(int(line.split()[1]) for line in out.read_text().splitlines() if re.match(r"totals: \d+", line))


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--requests", type=int, default=2000, help="Requests counted per strategy.")
    p.add_argument("--warm-up", type=int, default=WARM_UP, help="Requests served before counting starts.")
    p.add_argument("--child", choices=MODES, help=argparse_hidden())
    args = p.parse_args()
    if args.child:
        child(args.child, args.requests, args.warm_up)
        return
    requests = 20 if args.smoke else args.requests
    warm_up = SMOKE_WARM_UP if args.smoke else args.warm_up
    # The smoke proves the callgrind path works: two strategies are enough for a ratio.
    modes = ("pool", "persistent") if args.smoke else MODES
    with postgres() as _url, tempfile.TemporaryDirectory() as folder:
        setup_django()
        per_request = {mode: count(mode, requests, warm_up, Path(folder) / f"{mode}.out") / requests for mode in modes}
    print(f"instructions per request by connection strategy: {requests} requests of /bench/select-one (callgrind)")
    for mode in modes:
        print(f"  {mode:<12} {per_request[mode]:>10,.0f}")
    for other in [mode for mode in ("persistent", "django-pool") if mode in per_request]:
        ratio = per_request[other] / per_request["pool"]
        extra = per_request["pool"] - per_request[other]
        print(f"  ratio pool/{other:<11} {ratio:.3f}x requests per instruction (pool {extra:+,.0f} per request)")


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
