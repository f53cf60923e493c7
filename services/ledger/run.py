"""Running the ledger app under uvloop until SIGINT or SIGTERM."""

import gc

from liaison.common.logging import configure_logging
from liaison.common.serve import serve
from liaison.ledger.app import create_app
from liaison.ledger.settings import LedgerSettings


def run_ledger(settings: LedgerSettings) -> None:
    """Serve the ledger's API and console and consume until a stop signal."""
    configure_logging(level=settings.log_level)
    app = create_app(settings)
    tune_collector()
    serve(app, name="ledger", host=settings.http_host, port=settings.http_port, shutdown_timeout=10)


def tune_collector() -> None:
    """Collect the young generation less often, and never walk what start-up made.

    A batch's rows are thousands of tuples, each a tracked allocation: with the default
    threshold (700) the collector ran many times a batch, walking rows that are all still
    referenced and promoting them into older generations, whose collections walk the whole
    heap. The rows hold no cycles and are freed by reference counting once written. The hub
    does the same (``liaison.hub.run``); figures in bench/README.md, ``bench.ledger_write``.
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
