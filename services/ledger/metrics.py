"""The ledger's Prometheus metrics, on its own registry."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class LedgerMetrics:
    """Counters of what was recorded, and how far behind the hub the ledger is."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.records = Counter(
            "liaison_ledger_records", "Decision records committed", registry=self.registry
        )
        self.dead_letters = Counter(
            "liaison_ledger_dead_letters", "Dead letters committed", registry=self.registry
        )
        self.unreadable = Counter(
            "liaison_ledger_unreadable", "Queue messages kept as unreadable", registry=self.registry
        )
        self.batches = Counter(
            "liaison_ledger_batches", "Transactions committed", registry=self.registry
        )
        self.database_errors = Counter(
            "liaison_ledger_database_errors",
            "Failed writes (retried; the messages stay unacked in RabbitMQ)",
            registry=self.registry,
        )
        self.lag = Gauge(
            "liaison_ledger_lag_seconds",
            "Commit time minus decision time of the newest record in the last batch; "
            "0 once the ledger queue is empty",
            registry=self.registry,
        )
        self.backlog = Gauge(
            "liaison_ledger_backlog_messages",
            "Messages waiting in the ledger queue (sampled)",
            registry=self.registry,
        )
        self.record_lag = Histogram(
            "liaison_ledger_record_lag_seconds",
            "Decision to commit, per batch (newest record)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
