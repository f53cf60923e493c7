"""The hub's Prometheus metrics, in a registry of its own so tests can run several hubs."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class HubMetrics:
    """Messages by type and outcome, decision latency, in-flight work, dedupe window size."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.messages = Counter(
            "liaison_hub_messages",
            "Ingress messages decided, by message type and outcome.",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "liaison_hub_decision_seconds",
            "Time from receiving a message to the broker confirming what it caused.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "liaison_hub_in_flight",
            "Messages received and not yet acknowledged to the broker.",
            registry=self.registry,
        )
        self.dedupe_entries = Gauge(
            "liaison_hub_dedupe_window_entries",
            "Messages (deliveries and refusals) remembered so a repeat is not handled twice.",
            registry=self.registry,
        )
        self.reconnects = Counter(
            "liaison_hub_reconnects",
            "Times the hub reconnected to the broker.",
            registry=self.registry,
        )
        self.nack_retries = Counter(
            "liaison_hub_nack_retries",
            "Publishes sent again after the broker nacked them (a queue without a reachable "
            "leader, or full).",
            registry=self.registry,
        )
        self.inbox_guard_refusals = Counter(
            "liaison_hub_inbox_guard_refusals",
            "Messages refused 502 in transaction mode because an inbox they would reach was "
            "within LIAISON_INBOX_HEADROOM of its max length, or of unknown depth.",
            registry=self.registry,
        )
        self.publish_channels = Counter(
            "liaison_hub_publish_channel_renewals",
            "Times the hub moved its publishes to a new channel because the old one kept being "
            "nacked.",
            registry=self.registry,
        )
        self.directory_reloads = Counter(
            "liaison_hub_directory_reloads",
            "Directory reload attempts, by result.",
            ["result"],
            registry=self.registry,
        )
        self.delivery_mode = Gauge(
            "liaison_hub_delivery_mode",
            "1 for the delivery mode in force (LIAISON_DELIVERY, auto resolved).",
            ["mode"],
            registry=self.registry,
        )
        self.decoder = Gauge(
            "liaison_hub_decoder",
            "1 for the router's decoder: compiled (GeoJSON coordinates checked on the raw "
            "bytes) or python (the contract's decoder alone, no compiled module).",
            ["path"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str], Counter] = {}

    def count(self, message_type: str, outcome: str) -> None:
        """Count one decision; label children are cached since this runs per message."""
        key = (message_type, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.messages.labels(message_type, outcome)
        child.inc()
