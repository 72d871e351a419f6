"""What the service counts (docs/operations.md, "Metrics" lists every metric).

The parts of the service call one method of :class:`Metrics` at each point worth counting. The
base class records nothing: with metrics off every call returns at once, which is all the hot
paths (a send's end, a webhook, a provider call) pay. :class:`PrometheusMetrics` records into one
``CollectorRegistry`` of its own (never prometheus_client's global one), and keeps each label
set's child the first time it is seen, so that a call after the first is a dictionary lookup
and an add — no label dictionary is built per call.

Labels are bounded: an integration id (registered by the operator), an outcome, a gRPC code, an
HTTP status class — never an organisation, a number or a message id.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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


class _Child(Protocol):
    def inc(self, amount: float = 1) -> None: ...


_C = TypeVar("_C")


class _Bound(Generic[_C]):
    """A metric's children by label values, each made once."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Counter | Gauge | Histogram) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], _C] = {}

    def __call__(self, *labels: str) -> _C:
        try:
            return self._children[labels]
        except KeyError:
            child: _C = self._metric.labels(*labels)  # type: ignore[assignment]
            self._children[labels] = child
            return child


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
        self._sends: _Bound[_Child] = _Bound(
            Counter(
                "msgbridge_sends",
                "Attempts of messages ended, by integration, outcome and gRPC code",
                ("integration", "outcome", "code"),
                registry=r,
            )
        )
        self._provider_seconds: _Bound[Histogram] = _Bound(
            Histogram(
                "msgbridge_provider_request_duration_seconds",
                "Provider HTTP calls' duration (sends, retries, Subscribe, OAuth2 tokens)",
                ("integration",),
                buckets=_PROVIDER_BUCKETS,
                registry=r,
            )
        )
        self._provider_status: _Bound[_Child] = _Bound(
            Counter(
                "msgbridge_provider_responses",
                "Provider HTTP calls by integration and answer's status class (none: no answer)",
                ("integration", "status"),
                registry=r,
            )
        )
        self._webhooks: _Bound[_Child] = _Bound(
            Counter(
                "msgbridge_webhooks",
                "Webhook requests answered, by integration and outcome",
                ("integration", "outcome"),
                registry=r,
            )
        )
        self._events: _Bound[_Child] = _Bound(
            Counter(
                "msgbridge_events_appended",
                "Events appended to the event log by webhooks and sends' outcomes",
                ("integration",),
                registry=r,
            )
        )
        self._subscribers: _Bound[Gauge] = _Bound(
            Gauge(
                "msgbridge_stream_subscribers",
                "StreamEvents calls open on this process, by kind (cursor, consumer)",
                ("kind",),
                registry=r,
            )
        )
        self._oauth: _Bound[_Child] = _Bound(
            Counter(
                "msgbridge_oauth_refreshes",
                "OAuth2 access-token renewals, by integration and outcome",
                ("integration", "outcome"),
                registry=r,
            )
        )
        self._subscribe: _Bound[_Child] = _Bound(
            Counter(
                "msgbridge_subscribe_runs",
                "Subscribe runs of installations, by integration and resulting state",
                ("integration", "state"),
                registry=r,
            )
        )
        self._media: _Bound[_Child] = _Bound(
            Counter(
                "msgbridge_media_fetches",
                "Inbound files fetched, by integration and outcome",
                ("integration", "outcome"),
                registry=r,
            )
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
        self._sends(integration, outcome, code).inc()

    def provider_call(self, integration: str, status: int | None, seconds: float) -> None:
        self._provider_seconds(integration).observe(seconds)
        self._provider_status(integration, _status_class(status)).inc()

    def webhook(self, integration: str, outcome: str) -> None:
        self._webhooks(integration, outcome).inc()

    def events_appended(self, integration: str, count: int) -> None:
        if count:
            self._events(integration).inc(count)

    def subscriber(self, kind: str, delta: int) -> None:
        self._subscribers(kind).inc(delta)

    def oauth_refresh(self, integration: str, outcome: str) -> None:
        self._oauth(integration, outcome).inc()

    def subscribe(self, integration: str, outcome: str) -> None:
        self._subscribe(integration, outcome).inc()

    def media_fetch(self, integration: str, outcome: str) -> None:
        self._media(integration, outcome).inc()

    def queue(self, depth: int, oldest_due_age_s: float) -> None:
        self._queue_depth.set(depth)
        self._queue_age.set(oldest_due_age_s)

    def consumers(self, count: int, max_lag: int) -> None:
        self._consumers.set(count)
        self._consumer_lag.set(max_lag)
