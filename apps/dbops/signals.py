"""Signals other parts of a site (and the alerting service) can listen to."""

from django.dispatch import Signal

# Sent by the process that makes a circuit-breaker transition: old, new (breaker.State), reason (str).
breaker_transition = Signal()
