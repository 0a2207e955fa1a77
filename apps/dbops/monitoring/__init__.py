"""Query monitoring: per-query timing, the slow-query log, rolling windows, Prometheus collectors, snapshots.

- `queries`: the execute wrapper, slow-query log, performance report and metric refreshers.
- `metrics`: the module-level Prometheus collectors; `window`: bounded rolling percentiles.
- `snapshots`: each process' live signals shared through the cache (for alerts and the dashboard).
- `middleware`: request timing, the thin shell a site adds to MIDDLEWARE.
"""
