"""Client telemetry through prometheus_client (the optional extra
``pgcredit[metrics]``).

A client made with ``metrics=`` reports, for every call:

- ``pgcredit_client_call_duration_seconds`` (histogram; labels ``function``,
  ``code``): the whole call as the caller waited for it, retries and backoff
  included. ``code`` is the result code (``ok``, ``insufficient_credit``, ...),
  or ``busy`` (gave up after retrying), ``outcome_unknown`` (answered, but
  the commit is not confirmed durable: ``OutcomeUnknown``), ``invalid_input``
  (SQLSTATE class 22) or ``error`` (anything else). Its ``_count`` counts calls.
- ``pgcredit_client_retries_total`` (counter; ``function``, ``sqlstate``): each
  retry, by the SQLSTATE that caused it (``connection`` when the connection
  broke without one).
- ``pgcredit_client_busy_total`` (counter; ``function``): calls that raised
  ``CreditBusy`` after their last attempt.

Without ``metrics=`` nothing here is imported and a call does no extra work
but one ``is None`` test. prometheus_client is imported only when a
``ClientMetrics`` is made.
"""

from __future__ import annotations

import weakref
from typing import Any

from . import errors

# From half a millisecond: a call is one round trip (BENCHMARKS.md has its p50
# and p99) unless it waits for a line's lock; 0.1 s is the source documents'
# alert threshold for lock acquisition.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_BY_REGISTRY: "weakref.WeakKeyDictionary[Any, ClientMetrics]" = weakref.WeakKeyDictionary()


def _prometheus():
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError("client metrics need prometheus_client: pip install 'pgcredit[metrics]'") from exc
    return prometheus_client


class ClientMetrics:
    """The client's metric families, registered once in ``registry`` (default:
    prometheus_client's global registry). Share one between clients; or pass
    the registry itself as ``metrics=`` and the client finds the one made for it."""

    def __init__(self, registry: Any = None):
        prom = _prometheus()
        self.registry = registry if registry is not None else prom.REGISTRY
        self.duration = prom.Histogram(
            "pgcredit_client_call_duration_seconds",
            "pgcredit client calls: seconds the caller waited, retries included, by function and result code",
            ["function", "code"], buckets=BUCKETS, registry=self.registry)
        self.retries = prom.Counter(
            "pgcredit_client_retries_total",
            "pgcredit client retries (same idempotency key), by function and the SQLSTATE that caused them",
            ["function", "sqlstate"], registry=self.registry)
        self.busy = prom.Counter(
            "pgcredit_client_busy_total",
            "pgcredit client calls that gave up after their last retry (CreditBusy), by function",
            ["function"], registry=self.registry)

    def called(self, function: str, seconds: float, outcome: Any) -> None:
        """outcome: the call's result, or the exception it raised."""
        self.duration.labels(function, code_of(outcome)).observe(seconds)

    def retried(self, function: str, exc: Exception) -> None:
        self.retries.labels(function, getattr(exc, "sqlstate", None) or "connection").inc()

    def gave_up(self, function: str) -> None:
        self.busy.labels(function).inc()


def code_of(outcome: Any) -> str:
    if isinstance(outcome, errors.CreditRefused):
        return outcome.result.code
    if isinstance(outcome, errors.CreditBusy):
        return "busy"
    if isinstance(outcome, errors.OutcomeUnknown):
        return "outcome_unknown"
    if isinstance(outcome, errors.InvalidInput):
        return "invalid_input"
    if isinstance(outcome, BaseException):
        return "error"
    return getattr(outcome, "code", "ok")  # rows without a code, lists, counts: done


def resolve(metrics: Any) -> ClientMetrics | None:
    """The ``metrics=`` argument of a client: None (no telemetry), True (the
    global registry), a prometheus_client registry, or a ClientMetrics."""
    if metrics is None or metrics is False:
        return None
    if isinstance(metrics, ClientMetrics):
        return metrics
    registry = _prometheus().REGISTRY if metrics is True else metrics
    if not hasattr(registry, "register"):
        raise TypeError(f"metrics must be True, a prometheus_client registry or a ClientMetrics, not {metrics!r}")
    found = _BY_REGISTRY.get(registry)
    if found is None:
        found = _BY_REGISTRY[registry] = ClientMetrics(registry)
    return found
