"""structlog, configured once: JSON lines when not on a terminal, readable when on one.

The hub writes one line per message decision, so the JSON path is the fast one: msgspec
encodes straight to bytes and structlog's BytesLogger writes them without a str round trip.

Libraries log through the standard library (aiormq, aio-pika, asyncio's "Task exception was
never retrieved", ``warnings``). Their records go through structlog's ``ProcessorFormatter``
on the root logger, so they come out in the same shape as Liaison's own lines — one JSON
object per line, tracebacks as structured ``exception`` fields — instead of as plain text on
stderr from the standard library's last-resort handler. An uncaught exception on the way out
of the process is logged the same way.
"""

import logging
import sys
from types import TracebackType
from typing import Any, TextIO

import msgspec
import structlog

_encoder = msgspec.json.Encoder()
#: Tracebacks as data, without each frame's local variables: those may hold a password.
_tracebacks = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def _json_bytes(event: Any, **_: Any) -> bytes:
    return _encoder.encode(event)


def _json_str(event: Any, **_: Any) -> str:
    return _encoder.encode(event).decode("utf-8")


def configure_logging(
    *, level: str = "info", json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Set up structlog and stdlib logging for the process; ``json=None`` picks by tty."""
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
            _tracebacks,
            structlog.processors.JSONRenderer(serializer=_json_bytes),
        ]
        factory: Any = structlog.BytesLoggerFactory(file=out.buffer)
        foreign_renderer: Any = structlog.processors.JSONRenderer(serializer=_json_str)
        foreign_tail: list[Any] = [_tracebacks]
    else:
        processors = [*shared, structlog.dev.ConsoleRenderer(colors=out.isatty())]
        factory = structlog.PrintLoggerFactory(file=out)
        foreign_renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
        foreign_tail = []
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    _route_stdlib_logging(out, level_no, shared, foreign_tail, foreign_renderer)
    if as_json:
        sys.excepthook = _log_uncaught


def _route_stdlib_logging(
    out: TextIO, level_no: int, shared: list[Any], tail: list[Any], renderer: Any
) -> None:
    """Every stdlib record, whichever library made it, rendered by structlog on ``out``."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *shared,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "liaison", False):
            root.removeHandler(old)
    handler.liaison = True  # type: ignore[attr-defined]  # marks the handler we own
    root.addHandler(handler)
    root.setLevel(level_no)
    logging.captureWarnings(True)


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    structlog.get_logger("liaison").critical("uncaught_exception", exc_info=(kind, exc, tb))
