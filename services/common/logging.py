"""structlog, configured once: JSON lines when not on a terminal, readable when on one.

The hub writes one line per message decision, so the JSON path is the fast one: msgspec
encodes straight to bytes, written without a str round trip; in the hub, an info line
logged inside the event loop is written within 50 ms rather than at once
(``_HoldingLineWriter``): the same lines, in the same order, in a write system call per batch
of lines instead of one per message. The
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
import atexit
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


def _json_line(logger: Any, method_name: str, event_dict: Any) -> bytes:
    """The JSON path's whole chain in one processor, as the hub runs it per message: the
    context variables, the level, the timestamp, a traceback when there is one, the encoding."""
    event_dict = structlog.contextvars.merge_contextvars(logger, method_name, event_dict)
    event_dict = structlog.processors.add_log_level(logger, method_name, event_dict)
    event_dict["timestamp"] = _utc_now_iso()
    if "exc_info" in event_dict:  # ExceptionRenderer changes nothing without it
        event_dict = _tracebacks(logger, method_name, event_dict)
    return _encoder.encode(event_dict)


#: How long an info or debug line written inside an event loop may wait for its write.
FLUSH_AFTER_SECONDS = 0.05
#: Lines that may wait at most; one more writes them all at once.
_MAX_PENDING = 256


class _LineWriter:
    """structlog's ``BytesLogger``: each line written (and flushed) as it comes."""

    __slots__ = ("_file", "_lock", "_pending")

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._lock = threading.Lock()
        #: Lines kept for a later write (``_HoldingLineWriter``).
        self._pending: list[bytes] = []

    def msg_now(self, message: bytes) -> None:
        """Write what waits and one rendered line."""
        with self._lock:
            self._pending.append(message)
            self._write_pending()

    def flush(self) -> None:
        """Write every line that waits."""
        with self._lock:
            self._write_pending()

    def _write_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        pending.append(b"")
        data = memoryview(b"\n".join(pending))
        pending.clear()
        file = self._file
        while data:
            # A raw (unbuffered) stream may take part of it.
            written = file.write(data)
            data = data[len(data) if written is None else written :]
        file.flush()

    msg = log = debug = info = msg_now
    warn = warning = fatal = failure = err = error = critical = exception = msg_now


class _HoldingLineWriter(_LineWriter):
    """A ``_LineWriter`` that writes info and debug lines at most every 50 ms (the hub's).

    The hub decides messages one loop iteration apart, and its stdout is often unbuffered
    (``PYTHONUNBUFFERED``, as in containers): a write system call per decision line. Inside a
    running loop an info or debug line is kept here and written, with every line kept before
    it, by a timer ``FLUSH_AFTER_SECONDS`` later (or once ``_MAX_PENDING`` wait). Warnings and
    worse, every line outside a running loop (another thread's too) and every stdlib line
    (``_StdlibHandler``) write what waits first, then themselves: the order is kept. A clean
    exit writes what waits (``atexit``); a process killed outright (SIGKILL) can lose its last
    50 ms of info lines.
    """

    __slots__ = ("_scheduled",)

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        #: The loop a write is scheduled on, if any.
        self._scheduled: asyncio.AbstractEventLoop | None = None

    def msg_held(self, message: bytes) -> None:
        """Keep one rendered line for the next write, or write it now outside a loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.msg_now(message)
            return
        with self._lock:
            pending = self._pending
            pending.append(message)
            if len(pending) < _MAX_PENDING:
                if self._scheduled is not loop:
                    self._scheduled = loop
                    loop.call_later(FLUSH_AFTER_SECONDS, self._flush_scheduled)
                return
            self._write_pending()

    def _flush_scheduled(self) -> None:
        self._scheduled = None
        self.flush()

    msg = log = debug = info = msg_held


#: Every writer made (one per configuration; loggers bound before a reconfiguration keep
#: theirs): what waits in them goes out before any stdlib line, and at exit.
_writers: list[_LineWriter] = []


def _flush_waiting_lines() -> None:
    for writer in _writers:
        writer.flush()


atexit.register(_flush_waiting_lines)


class _StdlibHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root logger's handler: writes the lines the structlog writer holds first."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write what waits, then ``record``."""
        _flush_waiting_lines()
        super().emit(record)


def configure_logging(
    *,
    level: str = "info",
    json: bool | None = None,
    stream: TextIO | None = None,
    hold_info_lines: bool = False,
) -> None:
    """Set up structlog and stdlib logging for the process; ``json=None`` picks by tty.

    ``hold_info_lines``: on the JSON path, info and debug lines logged inside an event loop
    are written together at most ``FLUSH_AFTER_SECONDS`` later (``_HoldingLineWriter``; the
    hub's decision lines), not one write each.
    """
    out = stream or sys.stdout
    as_json = (not out.isatty()) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_timestamp,
    ]
    level_no = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    if as_json:
        # The shared chain, the tracebacks and JSONRenderer(serializer=_json_bytes), fused.
        processors: list[Any] = [_json_line]
        writer = (_HoldingLineWriter if hold_info_lines else _LineWriter)(out.buffer)
        _writers.append(writer)
        factory: Any = lambda *_: writer  # noqa: E731 - one writer for every logger
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
    handler = _StdlibHandler(out)
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
