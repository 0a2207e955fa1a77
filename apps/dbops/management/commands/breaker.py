import json

from django.core.management.base import BaseCommand

from dbops.breaker.state import State, get_breaker
from dbops.conf import cache_is_shared, get_config


class Command(BaseCommand):
    help = "Show or reset the database circuit breaker (shared through the cache when CACHE_URL is Redis)."

    def add_arguments(self, parser):
        parser.add_argument(
            "action",
            choices=["status", "reset"],
            help="status: print the state (exit 1 unless closed); reset: close it now.",
        )
        parser.add_argument("--json", action="store_true", help="Print the state as JSON.")

    def handle(self, *args, action, **options):
        breaker = get_breaker()
        if action == "reset":
            breaker.reset()
        state = breaker.current(force=True)
        data = {
            "state": str(state.state),
            "opened_at": state.opened_at or None,
            "next_probe_at": state.next_probe_at or None,
            # Shared only when the cache is (a per-process cache never reaches the web workers) and answers now.
            "shared_store": cache_is_shared(get_config().breaker.cache_alias) and not breaker.store.using_fallback,
        }
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True))
        else:
            self.stdout.write(f"circuit breaker {data['state']}")
            if not data["shared_store"]:
                self.stderr.write(
                    "the breaker state is this process' own (the cache is per-process or unreachable): "
                    "web workers keep theirs; set CACHE_URL=redis://... to share it"
                )
        if state.state != State.CLOSED:
            raise SystemExit(1)
