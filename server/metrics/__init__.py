"""Prometheus metrics (docs/operations.md, "Metrics"): what the service counts and the listener
that serves them.

:class:`Metrics` is the interface the service's parts are given in their constructors; by
itself it records nothing (metrics off: a method call that returns). :class:`PrometheusMetrics`
records into its own registry, built once by ``build_server`` when ``metrics_listen`` is set;
:class:`MetricsServer` serves ``/metrics`` on that address, reading the store's gauges (the
queue, durable consumers) at each scrape (:class:`StoreGauges`).
"""

from ._metrics import NO_METRICS, Metrics, PrometheusMetrics
from ._server import MetricsServer, StoreGauges, build_metrics_app

__all__ = [
    "NO_METRICS",
    "Metrics",
    "MetricsServer",
    "PrometheusMetrics",
    "StoreGauges",
    "build_metrics_app",
]
