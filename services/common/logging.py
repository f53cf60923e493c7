"""structlog, configured once: JSON lines when not on a terminal, readable when on one.

The hub writes one line per message decision, so the JSON path is the fast one: msgspec
encodes straight to bytes and structlog's BytesLogger writes them without a str round trip.
"""

import logging
import sys
from typing import Any, TextIO

import msgspec
import structlog

_encoder = msgspec.json.Encoder()


def _json_bytes(event: Any, **_: Any) -> bytes:
    return _encoder.encode(event)


def configure_logging(
    *, level: str = "info", json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Set up structlog for the whole process; ``json=None`` picks by whether stdout is a tty."""
    out = stream or sys.stdout
    as_json = (not out.isatty()) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    level_no = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    if as_json:
        processors = [
            *shared,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(serializer=_json_bytes),
        ]
        factory: Any = structlog.BytesLoggerFactory(file=out.buffer)
    else:
        processors = [*shared, structlog.dev.ConsoleRenderer(colors=out.isatty())]
        factory = structlog.PrintLoggerFactory(file=out)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
