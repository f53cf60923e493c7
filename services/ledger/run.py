"""Running the ledger app under uvloop until SIGINT or SIGTERM."""

from liaison.common.logging import configure_logging
from liaison.common.serve import serve
from liaison.ledger.app import create_app
from liaison.ledger.settings import LedgerSettings


def run_ledger(settings: LedgerSettings) -> None:
    """Serve the ledger's API and console and consume until a stop signal."""
    configure_logging(level=settings.log_level)
    app = create_app(settings)
    serve(app, name="ledger", host=settings.http_host, port=settings.http_port, shutdown_timeout=10)
