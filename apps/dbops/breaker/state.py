"""A circuit breaker for the database: closed -> open -> half-open -> closed, with probe-driven recovery.

Why not pybreaker: it wraps calls (we decide per request in middleware), recovers only by letting a request
through after a timeout (we probe with a short direct `SELECT 1` and reset the pool the moment the server is
back), stores shared state in raw Redis (we use Django's cache, so Redis or anything else) and has no fallback
when that store fails. The state machine below is small; the store is pluggable.

State is shared through a `StateStore`: `CacheStateStore` (Django's cache: Redis in production, so one worker
discovering an outage protects every worker and host) wrapped in `FallbackStore`, which keeps the breaker working
process-locally while the cache itself is down. Each process re-reads the shared state at most every
`SYNC_INTERVAL` seconds, so a healthy request costs no store round trip.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import logging
import math
import threading
import time

from django.core.cache import caches

from dbops.conf import BreakerConfig, get_config
from dbops.database.pool import direct_connection, refresh_pool
from dbops.logs import log_event
from dbops.monitoring import metrics
from dbops.signals import breaker_transition

logger = logging.getLogger("dbops.breaker")

SYNC_INTERVAL = 0.5


class State(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclasses.dataclass
class BreakerState:
    """What every process must agree on. Times are wall-clock seconds: they are compared across hosts."""

    state: State = State.CLOSED
    opened_at: float = 0.0
    next_probe_at: float = 0.0
    generation: int = 0  # bumped on every transition, so processes notice transitions they did not make
    # Bumped when the server is back after an outage: every process drains its pool once per bump, including
    # one whose threads were all stuck in the pool while the breaker was open and never saw it open.
    pool_generation: int = 0


class StateStore(abc.ABC):
    """Where the breaker keeps its state and failure count."""

    @abc.abstractmethod
    def load(self) -> BreakerState: ...

    @abc.abstractmethod
    def save(self, state: BreakerState) -> None: ...

    @abc.abstractmethod
    def add_failure(self, window: int) -> int:
        """Count one failure; return the failures within the last `window` seconds (approximately)."""

    @abc.abstractmethod
    def reset_failures(self) -> None: ...

    @abc.abstractmethod
    def acquire(self, name: str, ttl: float) -> bool:
        """Take the lease `name` for `ttl` seconds unless somebody holds it (one probe, one trial request)."""


class LocalStateStore(StateStore):
    """Process-local state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = BreakerState()
        self._failures = 0
        self._failures_expire = 0.0
        self._leases: dict[str, float] = {}

    def load(self) -> BreakerState:
        with self._lock:
            return dataclasses.replace(self._state)

    def save(self, state: BreakerState) -> None:
        with self._lock:
            self._state = dataclasses.replace(state)

    def add_failure(self, window: int) -> int:
        with self._lock:
            now = time.monotonic()
            if now > self._failures_expire:
                self._failures = 0
                self._failures_expire = now + window
            self._failures += 1
            return self._failures

    def reset_failures(self) -> None:
        with self._lock:
            self._failures = 0

    def acquire(self, name: str, ttl: float) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._leases.get(name, 0.0) > now:
                return False
            self._leases[name] = now + ttl
            return True


class CacheStateStore(StateStore):
    """State in a Django cache. Failures are an atomic counter whose key expires after the failure window."""

    def __init__(self, cache_alias: str, prefix: str = "dbops:breaker") -> None:
        self.cache_alias = cache_alias
        self.prefix = prefix

    @property
    def cache(self):
        return caches[self.cache_alias]

    def load(self) -> BreakerState:
        data = self.cache.get(f"{self.prefix}:state")
        if not data:
            return BreakerState()
        return BreakerState(**{**data, "state": State(data["state"])})

    def save(self, state: BreakerState) -> None:
        self.cache.set(f"{self.prefix}:state", {**dataclasses.asdict(state), "state": str(state.state)}, None)

    def add_failure(self, window: int) -> int:
        key = f"{self.prefix}:failures"
        self.cache.add(key, 0, window)
        try:
            return self.cache.incr(key)
        except ValueError:  # expired between add and incr
            self.cache.add(key, 1, window)
            return 1

    def reset_failures(self) -> None:
        self.cache.delete(f"{self.prefix}:failures")

    def acquire(self, name: str, ttl: float) -> bool:
        return bool(self.cache.add(f"{self.prefix}:lease:{name}", 1, max(1, math.ceil(ttl))))


class FallbackStore(StateStore):
    """Use `primary`; while it fails, use process-local state (logged once per outage) and retry it later."""

    RETRY_AFTER = 5.0

    def __init__(self, primary: StateStore) -> None:
        self.primary = primary
        self.local = LocalStateStore()
        self._primary_down_until = 0.0

    @property
    def using_fallback(self) -> bool:
        return time.monotonic() < self._primary_down_until

    def _call(self, method: str, *args):
        if not self.using_fallback:
            try:
                result = getattr(self.primary, method)(*args)
            except Exception as exc:
                if self._primary_down_until == 0.0:
                    log_event(
                        logger,
                        logging.WARNING,
                        "breaker_store_unavailable",
                        error=type(exc).__name__,
                        fallback="process-local",
                    )
                self._primary_down_until = time.monotonic() + self.RETRY_AFTER
            else:
                if self._primary_down_until:
                    self._primary_down_until = 0.0
                    log_event(logger, logging.WARNING, "breaker_store_recovered")
                return result
        return getattr(self.local, method)(*args)

    def load(self) -> BreakerState:
        return self._call("load")

    def save(self, state: BreakerState) -> None:
        self.local.save(state)  # the local copy is the fallback's starting point
        self._call("save", state)

    def add_failure(self, window: int) -> int:
        return self._call("add_failure", window)

    def reset_failures(self) -> None:
        self.local.reset_failures()
        self._call("reset_failures")

    def acquire(self, name: str, ttl: float) -> bool:
        return self._call("acquire", name, ttl)


@dataclasses.dataclass(frozen=True)
class Decision:
    """The breaker's answer for one request."""

    allow: bool
    trial: bool = False
    retry_after: int = 1
    state: State = State.CLOSED


ALLOW = Decision(allow=True)


class CircuitBreaker:
    """The state machine. One per process (see `get_breaker`)."""

    def __init__(self, config: BreakerConfig, store: StateStore, *, probe=None) -> None:
        self.config = config
        self.store = store
        self._probe = probe or self._select_one
        self._lock = threading.Lock()
        self._cached = BreakerState()
        self._synced_at = 0.0
        self._failures_seen = 0
        self._pool_generation = 0
        self._pool_lock = threading.Lock()
        self._prober: threading.Thread | None = None
        metrics.BREAKER_STATE.labels(State.CLOSED).set(1)

    # -- state ----------------------------------------------------------------------------------------
    def current(self, *, force: bool = False) -> BreakerState:
        """Return the shared state, re-read at most every SYNC_INTERVAL seconds (always with `force`)."""
        now = time.monotonic()
        if not force and now - self._synced_at < SYNC_INTERVAL:
            return self._cached
        with self._lock:
            if not force and now - self._synced_at < SYNC_INTERVAL:
                return self._cached
            previous, state = self._cached, self.store.load()
            self._synced_at = now  # meanwhile the other threads keep acting on the previous state
        if state.generation != previous.generation:
            self._observe(state)
        self._cached = state
        return state

    def _observe(self, state: BreakerState) -> None:
        """React to transitions made by other processes, including ones this process never saw happen."""
        self._set_state_gauge(state.state)
        if state.state == State.OPEN:
            self._ensure_prober()
        self._follow_pool_generation(state)

    def _follow_pool_generation(self, state: BreakerState) -> None:
        """Refresh this process' pool once per bump, before any of its requests acts on the state that bumped it.

        Otherwise a trial request could take a connection from the pool being closed, fail, and re-open the breaker.
        """
        with self._pool_lock:
            if state.pool_generation != self._pool_generation:
                refresh_pool(self.config.alias)
                self._pool_generation = state.pool_generation

    def _transition(
        self, new: State, reason: str, *, expected: State | None = None, server_back: bool = False
    ) -> BreakerState:
        with self._lock:
            state = self.store.load()
            # One process makes each transition, however many workers and hosts saw the same failures: the
            # lease on the current generation is taken once (an atomic `add` in a shared cache).
            if expected is not None and (
                state.state != expected or not self.store.acquire(f"transition:{state.generation}", 60)
            ):
                self._cached, self._synced_at = state, time.monotonic()
                return state  # somebody else moved it first
            old = state.state
            now = time.time()
            state = BreakerState(
                state=new,
                opened_at=now if new == State.OPEN else state.opened_at,
                next_probe_at=now + self.config.probe_interval if new == State.OPEN else 0.0,
                generation=state.generation + 1,
                pool_generation=state.pool_generation + (1 if server_back else 0),
            )
            self._follow_pool_generation(state)  # this process' pool is fresh before the state is published
            self.store.save(state)
            if new != State.OPEN:
                self.store.reset_failures()
            self._failures_seen = 0
            self._cached, self._synced_at = state, time.monotonic()
        # The generation orders transitions across processes: their log lines may reach a shared log out of order.
        log_event(
            logger, logging.WARNING, "breaker_transition", old=str(old), new=str(new), reason=reason,
            generation=state.generation,
        )  # fmt: skip
        metrics.BREAKER_TRANSITIONS.labels(str(new)).inc()
        self._set_state_gauge(new)
        breaker_transition.send(sender=type(self), old=old, new=new, reason=reason)
        if new == State.OPEN:
            self._ensure_prober()
        return state

    @staticmethod
    def _set_state_gauge(current: State) -> None:
        for state in State:
            metrics.BREAKER_STATE.labels(str(state)).set(1 if state == current else 0)

    # -- requests --------------------------------------------------------------------------------------
    def before_request(self) -> Decision:
        """Decide whether a request may use the database now."""
        state = self.current()
        if state.state == State.CLOSED:
            return ALLOW
        now = time.time()
        if state.state == State.OPEN and now >= state.next_probe_at:
            # A probe was due since this copy was read: another process may have moved on (half-open, closed).
            state = self.current(force=True)
            if state.state == State.CLOSED:
                return ALLOW
        if state.state == State.OPEN:
            if now - state.opened_at >= self.config.reset_timeout:
                state = self._transition(State.HALF_OPEN, "reset timeout elapsed", expected=State.OPEN)
            else:
                self._ensure_prober()
                return Decision(
                    allow=False, retry_after=max(1, math.ceil(state.next_probe_at - now)), state=state.state
                )
        if state.state == State.HALF_OPEN:
            trial_ttl = self.config.probe_interval + 30
            if self.store.acquire(f"trial:{state.generation}", trial_ttl):
                return Decision(allow=True, trial=True, state=State.HALF_OPEN)
            if self.current(force=True).state == State.CLOSED:  # the trial (maybe another process') succeeded
                return ALLOW
            return Decision(allow=False, retry_after=1, state=State.HALF_OPEN)
        return ALLOW

    def record_success(self, decision: Decision) -> None:
        if decision.trial:
            self._transition(State.CLOSED, "trial request succeeded", expected=State.HALF_OPEN)
        elif self._failures_seen:
            self._failures_seen = 0
            self.store.reset_failures()

    def settle_trial(self) -> None:
        """Decide a half-open trial whose request never used the database: the probe asks the server itself."""
        if self._probe():
            self._transition(State.CLOSED, "trial request made no query; the probe succeeded", expected=State.HALF_OPEN)
        else:
            self._transition(State.OPEN, "trial request made no query; the probe failed", expected=State.HALF_OPEN)

    def record_failure(self, decision: Decision, error: BaseException) -> None:
        reason = f"database failure ({type(error).__name__})"
        if decision.trial:
            self._transition(State.OPEN, f"trial request failed: {reason}", expected=State.HALF_OPEN)
            return
        failures = self.store.add_failure(self.config.failure_window)
        self._failures_seen = failures
        if failures >= self.config.failure_threshold and self.current().state == State.CLOSED:
            self._transition(State.OPEN, f"{failures} consecutive failures, last: {reason}", expected=State.CLOSED)

    def retry_after(self) -> int:
        state = self.current()
        if state.state != State.OPEN:
            return 1
        return max(1, math.ceil(state.next_probe_at - time.time()))

    # -- probing -----------------------------------------------------------------------------------------
    def _select_one(self) -> bool:
        try:
            with direct_connection(self.config.alias, timeout=min(2.0, float(self.config.probe_interval))) as conn:
                conn.execute("SELECT 1").fetchone()
            return True
        except Exception:
            return False

    def _ensure_prober(self) -> None:
        with self._lock:
            if self._prober is not None and self._prober.is_alive():
                return
            self._prober = threading.Thread(target=self._probe_loop, daemon=True, name="dbops-breaker-probe")
            self._prober.start()

    def _probe_loop(self) -> None:
        """While open: one probe per interval across all processes; on success go half-open, fresh pool."""
        interval = float(self.config.probe_interval)
        while True:
            state = self.current(force=True)
            if state.state != State.OPEN:
                return
            wait = state.next_probe_at - time.time()
            if wait > 0:
                time.sleep(min(wait, interval))
                continue
            if not self.store.acquire(f"probe:{state.generation}:{int(time.time() // interval)}", interval):
                time.sleep(interval / 4)
                continue
            if self._probe():
                state = self._transition(State.HALF_OPEN, "probe succeeded", expected=State.OPEN, server_back=True)
                self._pool_trial(state)
                return
            with self._lock:
                latest = self.store.load()
                if latest.generation == state.generation:
                    latest.next_probe_at = time.time() + interval
                    self.store.save(latest)

    def _pool_trial(self, state: BreakerState) -> None:
        """Be the half-open trial at once: a query through this process' fresh pool, as a request would run it.

        Waiting for a request to be the trial left the site half-open (every other request 503) until traffic came.
        """
        if state.state != State.HALF_OPEN or not self.store.acquire(
            f"trial:{state.generation}", self.config.probe_interval + 30
        ):
            return  # another process moved on, or a request is the trial already
        from django.db import connections

        connection = connections[self.config.alias]
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            succeeded = True
        except Exception:
            succeeded = False
        finally:
            connection.close()  # back to the pool: this thread keeps nothing
        if succeeded:
            self._transition(State.CLOSED, "probe and a pooled query succeeded", expected=State.HALF_OPEN)
        else:
            self._transition(State.OPEN, "probe succeeded but a pooled query failed", expected=State.HALF_OPEN)

    def reset(self) -> None:
        """Close the breaker now (tests, and `manage.py breaker reset`); a closed one only forgets its failures."""
        if self.current(force=True).state == State.CLOSED:
            self.store.reset_failures()
            self._failures_seen = 0
            return
        self._transition(State.CLOSED, "manual reset")


_breaker: CircuitBreaker | None = None
_breaker_lock = threading.Lock()


def get_breaker() -> CircuitBreaker:
    """Return this process' breaker, built from settings on first use."""
    global _breaker
    if _breaker is None:
        with _breaker_lock:
            if _breaker is None:
                config = get_config().breaker
                _breaker = CircuitBreaker(config, FallbackStore(CacheStateStore(config.cache_alias)))
    return _breaker
