"""Django's PostgreSQL backend whose pool checks connections it hands out and comes back with the server.

The second part is `dbops.database.recovery`: a checkout first revives a pool whose connections failed. The third
is `dbops.database.parking`: between requests a thread keeps its connection for a moment instead of returning it.

After the server restarts, every idle pooled connection is dead, but nothing notices until it is used: Django's
stock pool handed them to requests (which failed) and to readiness probes (503 for about 45 s). Django's own
`CONN_HEALTH_CHECKS` pays a round trip per checkout and, with many dead connections, backs off between them
(0, 1, 2, 4 s...). `DeadConnectionCheck` costs nothing while the socket is quiet; once a connection turns out
dead, the whole pool is drained, since every connection older than a server restart died with it.
"""

from __future__ import annotations

import select
import threading
import time
import weakref

import psycopg
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool, PoolClosed

from dbops.database import parking
from dbops.database.recovery import PoolHealth, connection_class, evidence, revive


class DeadConnectionCheck:
    """psycopg_pool `check` callback: reject a dead connection and drain its pool; free while nothing arrived.

    A dead connection is handed out all the same (and the pool left as it is) when the server cannot be reached
    right now: the request then fails at once, and the circuit breaker counts it, instead of waiting out the pool
    timeout for a connection that cannot be made.
    """

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.pool: weakref.ref[ConnectionPool] | None = None

    def __call__(self, conn) -> None:
        # An idle connection's socket stays quiet; anything readable (the server's goodbye, EOF) means look closer.
        # poll, not select: select() refuses descriptors above 1023, which a busy process reaches.
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
        if not poller.poll(0):
            return
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            pool = self.pool() if self.pool is not None else None
            if pool is None:
                raise
            if not self._server_answers(pool):
                return  # the server is down: the request fails now, rather than after the pool timeout
            # Every idle connection older than the restart died with this one. Draining alone leaves the pool's
            # reconnection attempts in their backoff: the evidence makes the next checkout replace the pool.
            evidence(self.alias).failed()
            pool.drain()
            raise  # the pool hands out a new connection instead

    @staticmethod
    def _server_answers(pool: ConnectionPool) -> bool:
        try:
            # psycopg's own class, not the pool's recording one: this probe says nothing about the pool's attempts.
            psycopg.Connection.connect(pool.conninfo, **pool.kwargs).close()  # type: ignore[arg-type]
        except Exception:
            return False
        return True


class DbopsConnectionPool(ConnectionPool):
    """psycopg's pool, counting the connections its clients hold (`checked_out`) so a refresh can respect it.

    `dead_check` is its checkout check, also run when a thread takes back the connection it parked.
    """

    def __init__(self, *args, dead_check: DeadConnectionCheck, **kwargs) -> None:
        self._checkout_lock = threading.Lock()
        self._checked_out = 0
        self.dead_check = dead_check
        super().__init__(*args, check=dead_check, **kwargs)

    @property
    def checked_out(self) -> int:
        return self._checked_out

    def getconn(self, timeout: float | None = None):
        conn = super().getconn(timeout)
        with self._checkout_lock:
            self._checked_out += 1
        return conn

    def putconn(self, conn) -> None:
        with self._checkout_lock:
            self._checked_out -= 1
        super().putconn(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's PostgreSQL wrapper whose pooled connection stays on the thread between requests (`parking`)."""

    _checking_out = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dbops_parked = False
        self.dbops_parked_at = 0.0
        self.dbops_parked_by = 0
        self.dbops_park_lock = threading.Lock()
        self.dbops_leased_at = 0.0

    def ensure_connection(self):
        if self.dbops_parked:
            self._take_back_parked()
        super().ensure_connection()

    def _take_back_parked(self) -> None:
        """Use the connection this thread parked, unless it was returned meanwhile or turns out dead."""
        if not parking.take_back(self):
            return  # the pool has it back: ensure_connection checks out another
        pool = self._pool_it_came_from()
        if pool is None:
            self.close()  # its pool was replaced: it goes back to the old one, which closes it
            return
        try:
            pool.dead_check(self.connection)
        except Exception:
            self.close()  # dead (the pool drained the rest): the pool discards it and this thread takes another

    def close_if_unusable_or_obsolete(self):
        # Called when a request starts and when it ends. A pooled connection that is fine is parked rather than
        # returned (Django would return it: a pool requires CONN_MAX_AGE = 0); anything doubtful goes back.
        if self.dbops_parked or self.connection is None:
            return
        if (
            self._pool_it_came_from() is None  # not pooled (Django's persistent-connection rules), or replaced
            or self.errors_occurred
            or self.in_atomic_block
            or self.autocommit != self.settings_dict["AUTOCOMMIT"]
            or time.monotonic() - self.dbops_leased_at > parking.LEASE_SECONDS
        ):
            super().close_if_unusable_or_obsolete()
            return
        self.health_check_done = False
        parking.park(self)

    def _pool_it_came_from(self) -> DbopsConnectionPool | None:
        """Return the alias' current pool when the connection held came from it; None otherwise or without one."""
        pool = self._connection_pools.get(self.alias)  # type: ignore[attr-defined]
        came_from = getattr(self.connection, "_pool", None)  # psycopg_pool's mark, which Django's _close() reads
        return pool if isinstance(pool, DbopsConnectionPool) and came_from is pool else None

    def close(self):
        if self.dbops_parked:
            parking.take_back(self)  # closed by its own thread: nobody else may return it now
        super().close()

    def close_pool(self):
        parking.release_parked(self.alias)  # a closed pool closes what comes back: the server sees them go now
        super().close_pool()

    def connect(self):
        # Django's connect() builds the connection parameters on every call; a pool that exists connects with
        # the ones it was made with, so a checkout skips building them (about a tenth of a checkout's cost).
        self._checking_out = True
        try:
            super().connect()
        finally:
            self._checking_out = False

    def get_connection_params(self):
        # Only connect()'s own call, the first of the checkout, may skip them: revive()'s direct probe during the
        # same checkout needs the real parameters (with {} it asked libpq's defaults: another server, or none).
        skip, self._checking_out = self._checking_out, False
        if skip and self._connection_pools.get(self.alias) is not None:
            return {}
        return super().get_connection_params()

    @property
    def pool(self):
        # Read several times per checkout: an existing pool is one dictionary lookup away.
        existing = self._connection_pools.get(self.alias)
        if existing is not None:
            return existing
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias != base.NO_DB_ALIAS and pool_options and self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                return super().pool  # Django raises its own error for this
            check = DeadConnectionCheck(self.alias)
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # as Django does: it sets autocommit properly later on
            options = {} if pool_options is True else dict(pool_options)
            options.setdefault("connection_class", connection_class(self.alias))
            pool = DbopsConnectionPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                dead_check=check,
                **options,
            )
            check.pool = weakref.ref(pool)
            self._connection_pools.setdefault(self.alias, pool)
        return super().pool

    def get_new_connection(self, conn_params):
        """Check out a connection; first bring the pool back if it failed to connect and the server answers now.

        When its connections failed and the server still does not answer, fail at once rather than wait out the
        pool timeout for a connection that cannot be made (the breaker counts the failure, the request gets 503).
        """
        if not self.settings_dict["OPTIONS"].get("pool"):
            return super().get_new_connection(conn_params)
        if revive(self.alias) is PoolHealth.DOWN:
            raise psycopg.OperationalError("the database server does not answer (this worker's pool cannot connect)")
        waited_on = self._connection_pools.get(self.alias)
        parking.release_left_behind(self)
        if waited_on is not None and waited_on.checked_out >= waited_on.max_size:
            parking.release_parked(self.alias, limit=1)  # a parked connection must not make anyone wait
        self.dbops_leased_at = time.monotonic()
        try:
            return super().get_new_connection(conn_params)
        except PoolClosed:
            # Another thread replaced the pool this checkout was waiting in (it revived it after an outage): a
            # waiting checkout is not a checked-out connection, so the replacement did not wait for it. Take the
            # connection from the pool that replaces it instead of failing the request; while the old one is still
            # closing (up to a second) there is no new one yet, and `self.pool` makes it (the reviver then opens
            # the same one).
            if waited_on is None or not waited_on.closed or self._connection_pools.get(self.alias) is waited_on:
                raise
            return super().get_new_connection(conn_params)

    def _set_autocommit(self, autocommit):
        # Django sets autocommit on every checkout; a pooled connection comes back in autocommit already, and
        # psycopg's setter takes the connection lock and runs a generator even when nothing changes.
        if self.connection.autocommit != autocommit:
            super()._set_autocommit(autocommit)
