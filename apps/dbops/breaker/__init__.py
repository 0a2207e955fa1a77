"""The circuit breaker in front of the database: state machine, shared stores, outage classification, 503s.

- `state`: `get_breaker()`, closed -> open -> half-open -> closed with probe-driven recovery; per-process or cache
  store; transitions signalled through `dbops.signals.breaker_transition`.
- `outages`: which exceptions mean "the database is unavailable" (and which are application bugs).
- `responses`: the small 503 with Retry-After; `middleware`: the thin shell a site adds to MIDDLEWARE.
- `deadline`: a client-side bound on a request's statements (query timeout + grace) for a server that stopped
  answering altogether (frozen, partitioned): the socket is cut, the request gets its 503.
"""
