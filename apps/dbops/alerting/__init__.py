"""Alerting: rules that turn live signals into firing/clear, the alert lifecycle, and the channels it notifies.

- `rules`: each rule reads health, breaker, monitoring snapshots and history, and yields signals per subject.
- `lifecycle`: `evaluate()`, `acknowledge()`, deduplicated episodes with cooldown; receivers for dbops' signals.
- `channels`: the log, e-mail, a webhook; a failing channel is logged, never raised.
"""
