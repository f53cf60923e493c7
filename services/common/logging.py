"""structlog, configured once: JSON lines when not on a terminal, readable when on one.

The hub writes one line per message decision, so the JSON path is the fast one: msgspec
encodes straight to bytes, written without a str round trip, and inside an event loop an
info line is flushed within 50 ms rather than at once (``_LineWriter``): the same lines, in
the same order, in a write system call per batch of lines instead of one per message. The
timestamp is formatted from a per-second cache (``_utc_now_iso``): the text
``datetime.isoformat`` gives, at a third of its cost.

Libraries log through the standard library (aiormq, aio-pika, asyncio's "Task exception was
never retrieved", ``warnings``). Their records go through structlog's ``ProcessorFormatter``
on the root logger, so they come out in the same shape as Liaison's own lines — one JSON
object per line, tracebacks as structured ``exception`` fields — instead of as plain text on
stderr from the standard library's last-resort handler. An uncaught exception on the way out
of the process is logged the same way.
"""

import asyncio
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, BinaryIO, TextIO

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


#: The second the cached prefix is of, and ``YYYY-MM-DDTHH:MM:SS`` of it.
_stamp_second = -1
_stamp_prefix = ""


def _utc_now_iso() -> str:
    """Now in UTC as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes it:
    ``datetime.isoformat`` with ``Z`` for ``+00:00`` (no fraction on a whole second)."""
    global _stamp_second, _stamp_prefix  # a one-entry cache
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    if second != _stamp_second:
        _stamp_prefix = datetime.fromtimestamp(second, UTC).isoformat()[:19]
        _stamp_second = second
    return f"{_stamp_prefix}.{micro:06d}Z" if micro else f"{_stamp_prefix}Z"


def _add_timestamp(_: Any, __: str, event_dict: Any) -> Any:
    event_dict["timestamp"] = _utc_now_iso()
    return event_dict


#: How long an info or debug line written inside an event loop may wait in the stream's buffer.
FLUSH_AFTER_SECONDS = 0.05


class _LineWriter:
    """structlog's ``BytesLogger``, flushing info and debug lines at most every 50 ms.

    Each line is written to the buffered stream at once, in order (a stdlib line written in
    between goes through the same buffer after it and flushes it). The hub decides messages one
    loop iteration apart, so flushing each decision line cost a write system call per message;
    inside a running loop an info or debug line now waits up to ``FLUSH_AFTER_SECONDS`` (or
    until the buffer fills) for a flush it shares with the lines after it. Warnings and worse,
    and every line outside a running loop (another thread's too), are flushed at once. A
    process killed outright (SIGKILL) can lose its last 50 ms of info lines; a clean exit
    flushes them.
    """

    __slots__ = ("_flush", "_lock", "_scheduled", "_write")

    def __init__(self, file: BinaryIO) -> None:
        self._write = file.write
        self._flush = file.flush
        self._lock = threading.Lock()
        #: The loop a flush is scheduled on, if any.
        self._scheduled: asyncio.AbstractEventLoop | None = None

    def msg(self, message: bytes) -> None:
        """Write one rendered line; flush it now, or within ``FLUSH_AFTER_SECONDS``."""
        with self._lock:
            self._write(message + b"\n")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            with self._lock:
                self._flush()
            return
        if self._scheduled is not loop:
            self._scheduled = loop
            loop.call_later(FLUSH_AFTER_SECONDS, self._flush_scheduled)

    def msg_now(self, message: bytes) -> None:
        """Write one rendered line and flush it with whatever waits before it."""
        with self._lock:
            self._write(message + b"\n")
            self._flush()

    def _flush_scheduled(self) -> None:
        self._scheduled = None
        with self._lock:
            self._flush()

    log = debug = info = msg
    warn = warning = fatal = failure = err = error = critical = exception = msg_now


class _LineWriterFactory:
    """One ``_LineWriter`` per binary stream, as structlog's ``logger_factory`` asks."""

    def __init__(self, file: BinaryIO) -> None:
        self._writer = _LineWriter(file)

    def __call__(self, *_: Any) -> _LineWriter:
        return self._writer


def configure_logging(
    *, level: str = "info", json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Set up structlog and stdlib logging for the process; ``json=None`` picks by tty."""
    out = stream or sys.stdout
    as_json = (not out.isatty()) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_timestamp,
    ]
    level_no = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    if as_json:
        processors = [
            *shared,
            _tracebacks,
            structlog.processors.JSONRenderer(serializer=_json_bytes),
        ]
        factory: Any = _LineWriterFactory(out.buffer)
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
