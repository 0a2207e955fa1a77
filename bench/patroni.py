"""`make patroni-cluster`: a Patroni-managed PostgreSQL cluster on loopback until Ctrl-C (tests/parts/patroni.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.parts.patroni import main  # noqa: E402 - after the path set-up

if __name__ == "__main__":
    main()
