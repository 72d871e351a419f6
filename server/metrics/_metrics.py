"""What the service counts (docs/operations.md, "Metrics" lists every metric).

The parts of the service call one method of :class:`Metrics` at each point worth counting. The
base class records nothing: with metrics off every call returns at once, which is all the hot
paths (a send's end, a webhook, a provider call) pay. :class:`PrometheusMetrics` records into one
``CollectorRegistry`` of its own (never prometheus_client's global one).

The counters and the histogram the hot paths feed are plain numbers in dictionaries keyed by
their label values, read by a collector of their own at each scrape (prometheus_client's custom
collector API: ``CounterMetricFamily``, ``HistogramMetricFamily``): a call is a dictionary
update. prometheus_client's own ``Counter`` takes a lock and a label lookup per increment, and
its ``Histogram`` walks its buckets under a lock — several microseconds a send. Every call comes
from the event loop's thread, as does the scrape (``_server.py``), so no lock is needed. The
gauges, set rarely, are prometheus_client's.

Labels are bounded: an integration id (registered by the operator), an outcome, a gRPC code, an
HTTP status class — never an organisation, a number or a message id.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["NO_METRICS", "Metrics", "PrometheusMetrics"]

# A provider call takes tens of milliseconds to seconds; the provider timeout defaults to 15 s.
_PROVIDER_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class Metrics:
    """Metrics off: every method records nothing. :class:`PrometheusMetrics` records them.

    The outcomes each method takes are those docs/operations.md lists for its metric.
    """

    enabled = False

    def send_ended(self, integration: str, outcome: str, code: str) -> None:
        """An attempt of a message ended: ``sent``, ``failed``, ``retried`` (queued again)
        or ``abandoned`` (its process died mid-call); ``code`` the gRPC code (``OK`` when sent)."""

    def provider_call(self, integration: str, status: int | None, seconds: float) -> None:
        """A provider HTTP call ended with ``status`` (None: no answer) after ``seconds``."""

    def webhook(self, integration: str, outcome: str) -> None:
        """A webhook request was answered (``matched``, ``unmatched``, ``unroutable``,
        ``duplicate``, ``refused_signature``, ``unparseable``, ``not_found``)."""

    def events_appended(self, integration: str, count: int) -> None:
        """``count`` events were appended to the event log."""

    def subscriber(self, kind: str, delta: int) -> None:
        """A stream subscriber (``kind``: ``cursor`` or ``consumer``) came (+1) or left (-1)."""

    def oauth_refresh(self, integration: str, outcome: str) -> None:
        """An OAuth2 token renewal ended: ``ok`` or ``failed``."""

    def subscribe(self, integration: str, outcome: str) -> None:
        """A Subscribe run ended: ``subscribed``, ``failed`` or ``not_required``."""

    def media_fetch(self, integration: str, outcome: str) -> None:
        """An inbound file's fetch ended: ``kept``, ``retrying`` or ``failed``."""

    def queue(self, depth: int, oldest_due_age_s: float) -> None:
        """The delivery queue as the store has it (read at each scrape)."""

    def consumers(self, count: int, max_lag: int) -> None:
        """The durable consumers and the largest lag among them, in events (at each scrape)."""


#: Metrics off.
NO_METRICS = Metrics()


_Labels = tuple[str, ...]


class _Counts:
    """A counter by label values (exposed as ``NAME_total``)."""

    __slots__ = ("_documentation", "_labels", "_name", "values")

    def __init__(self, name: str, documentation: str, labels: _Labels) -> None:
        self._name, self._documentation, self._labels = name, documentation, labels
        self.values: dict[_Labels, float] = {}

    def family(self) -> Metric:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labels)
        for labels, value in list(self.values.items()):
            family.add_metric(labels, value)
        return family


class _Durations:
    """A histogram by label values: per label set, the count in each bucket (the last one past
    every bound) and the sum of the values."""

    __slots__ = ("_bounds", "_documentation", "_labels", "_name", "values")

    def __init__(
        self, name: str, documentation: str, labels: _Labels, bounds: tuple[float, ...]
    ) -> None:
        self._name, self._documentation, self._labels = name, documentation, labels
        self._bounds = bounds
        self.values: dict[_Labels, tuple[list[int], list[float]]] = {}

    def observe(self, labels: _Labels, value: float) -> None:
        entry = self.values.get(labels)
        if entry is None:
            entry = self.values[labels] = ([0] * (len(self._bounds) + 1), [0.0])
        # A bucket counts the values at most its bound ("le"): the first bound ≥ value.
        entry[0][bisect.bisect_left(self._bounds, value)] += 1
        entry[1][0] += value

    def family(self) -> Metric:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labels)
        edges = [*map(floatToGoString, self._bounds), "+Inf"]
        for labels, (counts, total) in list(self.values.items()):
            running, buckets = 0, []
            for edge, count in zip(edges, counts, strict=True):
                running += count
                buckets.append((edge, float(running)))
            family.add_metric(labels, buckets, total[0])
        return family


class _Families(Collector):
    """The counters and histograms, read at each scrape."""

    def __init__(self, families: tuple[_Counts | _Durations, ...]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return (family.family() for family in self._families)


def _status_class(status: int | None) -> str:
    if status is None:
        return "none"
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class PrometheusMetrics(Metrics):
    """Metrics on: recorded into ``registry`` (one per service; served by MetricsServer)."""

    enabled = True

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._sends = _Counts(
            "msgbridge_sends",
            "Attempts of messages ended, by integration, outcome and gRPC code",
            ("integration", "outcome", "code"),
        )
        self._provider_seconds = _Durations(
            "msgbridge_provider_request_duration_seconds",
            "Provider HTTP calls' duration (sends, retries, Subscribe, OAuth2 tokens)",
            ("integration",),
            _PROVIDER_BUCKETS,
        )
        self._provider_status = _Counts(
            "msgbridge_provider_responses",
            "Provider HTTP calls by integration and answer's status class (none: no answer)",
            ("integration", "status"),
        )
        self._webhooks = _Counts(
            "msgbridge_webhooks",
            "Webhook requests answered, by integration and outcome",
            ("integration", "outcome"),
        )
        self._events = _Counts(
            "msgbridge_events_appended",
            "Events appended to the event log by webhooks and sends' outcomes",
            ("integration",),
        )
        self._oauth = _Counts(
            "msgbridge_oauth_refreshes",
            "OAuth2 access-token renewals, by integration and outcome",
            ("integration", "outcome"),
        )
        self._subscribe = _Counts(
            "msgbridge_subscribe_runs",
            "Subscribe runs of installations, by integration and resulting state",
            ("integration", "state"),
        )
        self._media = _Counts(
            "msgbridge_media_fetches",
            "Inbound files fetched, by integration and outcome",
            ("integration", "outcome"),
        )
        r.register(
            _Families(
                (
                    self._sends,
                    self._provider_seconds,
                    self._provider_status,
                    self._webhooks,
                    self._events,
                    self._oauth,
                    self._subscribe,
                    self._media,
                )
            )
        )
        self._subscribers = Gauge(
            "msgbridge_stream_subscribers",
            "StreamEvents calls open on this process, by kind (cursor, consumer)",
            ("kind",),
            registry=r,
        )
        self._queue_depth = Gauge(
            "msgbridge_queue_depth", "Messages queued (all installations)", registry=r
        )
        self._queue_age = Gauge(
            "msgbridge_queue_oldest_due_age_seconds",
            "How long the most overdue queued message has been due (0: none overdue)",
            registry=r,
        )
        self._consumers = Gauge(
            "msgbridge_consumers", "Durable consumers known to the store", registry=r
        )
        self._consumer_lag = Gauge(
            "msgbridge_consumer_lag_events",
            "Events after the frontier of the durable consumer furthest behind",
            registry=r,
        )

    def send_ended(self, integration: str, outcome: str, code: str) -> None:
        _add(self._sends.values, (integration, outcome, code))

    def provider_call(self, integration: str, status: int | None, seconds: float) -> None:
        self._provider_seconds.observe((integration,), seconds)
        _add(self._provider_status.values, (integration, _status_class(status)))

    def webhook(self, integration: str, outcome: str) -> None:
        _add(self._webhooks.values, (integration, outcome))

    def events_appended(self, integration: str, count: int) -> None:
        if count:
            _add(self._events.values, (integration,), count)

    def subscriber(self, kind: str, delta: int) -> None:
        self._subscribers.labels(kind).inc(delta)

    def oauth_refresh(self, integration: str, outcome: str) -> None:
        _add(self._oauth.values, (integration, outcome))

    def subscribe(self, integration: str, outcome: str) -> None:
        _add(self._subscribe.values, (integration, outcome))

    def media_fetch(self, integration: str, outcome: str) -> None:
        _add(self._media.values, (integration, outcome))

    def queue(self, depth: int, oldest_due_age_s: float) -> None:
        self._queue_depth.set(depth)
        self._queue_age.set(oldest_due_age_s)

    def consumers(self, count: int, max_lag: int) -> None:
        self._consumers.set(count)
        self._consumer_lag.set(max_lag)


def _add(values: dict[_Labels, float], labels: _Labels, amount: float = 1) -> None:
    values[labels] = values.get(labels, 0) + amount
