"""Every line a Liaison process writes is one JSON object, library lines and tracebacks too."""

import asyncio
import io
import json
import logging as stdlib_logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from liaison.common import logging as logging_module
from tests.hub_process import ROOT, free_port

SECRET = "hunter2-not-for-logs"


def _json_lines(text: str, stream: str) -> list[dict[str, object]]:
    """Each non-empty line decoded; a line that is not a JSON object fails the test."""
    docs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            pytest.fail(f"plain-text line on {stream}: {line!r}")
        assert isinstance(doc, dict), line
        docs.append(doc)
    return docs


async def test_hub_without_a_broker_logs_only_json() -> None:
    """A hub whose broker connection fails writes only JSON lines on stdout and stderr: aiormq's
    connection errors included, and the password in its URL nowhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env.update(
        LIAISON_AMQP_URL=f"amqp://someone:{SECRET}@127.0.0.1:{free_port()}/liaison",
        LIAISON_DIRECTORY=str(ROOT / "deploy" / "directory.toml"),
        LIAISON_HTTP_PORT=str(free_port()),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "liaison.hub", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    seen = 0
    while seen < 3:  # three failed attempts: aiormq has had its say each time
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, "the hub exited"
        seen += b"broker_unavailable" in line
    process.send_signal(signal.SIGTERM)
    rest, err = await asyncio.wait_for(process.communicate(), 30)
    out_docs = _json_lines(rest.decode(), "stdout")
    err_docs = _json_lines(err.decode(), "stderr")
    assert SECRET not in (rest + err).decode()
    loggers = {d.get("logger") for d in out_docs + err_docs}
    assert "aiormq.connection" in loggers, loggers
    assert process.returncode == 0


async def test_library_tracebacks_and_warnings_are_json(tmp_path: Path) -> None:
    """asyncio's "Task exception was never retrieved", a warning and an uncaught exception come
    out as JSON objects with the traceback as data, without frame locals."""
    script = tmp_path / "noisy.py"
    script.write_text(
        "import asyncio, gc, warnings\n"
        "from liaison.common.logging import configure_logging\n"
        "configure_logging(json=True)\n"
        "async def fail():\n"
        f"    password = {SECRET!r}\n"
        "    raise ValueError('lost task')\n"
        "async def main():\n"
        "    asyncio.ensure_future(fail())\n"
        "    await asyncio.sleep(0.01)\n"
        "asyncio.run(main())\n"
        "gc.collect()\n"
        "warnings.warn('careful')\n"
        "raise RuntimeError('on the way out')\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    docs = _json_lines(out.decode(), "stdout") + _json_lines(err.decode(), "stderr")
    by_event = {str(d["event"]).split("\n")[0]: d for d in docs}
    assert by_event["Task exception was never retrieved"]["logger"] == "asyncio"
    assert "exception" in by_event["Task exception was never retrieved"]
    assert any("careful" in event for event in by_event)
    assert by_event["uncaught_exception"]["level"] == "critical"
    assert SECRET not in (out + err).decode()
    assert process.returncode == 1


def test_timestamp_is_isoformat_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cached timestamp is what ``datetime.isoformat`` writes (``Z`` for UTC), a whole
    second without a fraction, across second boundaries."""
    instants = [
        1_700_000_000_000_000_000,
        1_700_000_000_123_456_789,
        1_700_000_000_999_999_999,
        1_700_000_001_000_001_000,
        1_700_000_000_500_000_000,  # back in time: the cache follows
    ]
    for ns in instants:
        monkeypatch.setattr(logging_module.time, "time_ns", lambda ns=ns: ns)
        second, micro = divmod(ns // 1000, 1_000_000)
        expected = datetime.fromtimestamp(second, UTC).replace(microsecond=micro).isoformat()
        assert logging_module._utc_now_iso() == expected.replace("+00:00", "Z")


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
async def test_info_lines_in_a_loop_share_a_write(tmp_path: Path, unbuffered: bool) -> None:
    """Inside an event loop an info line waits (up to FLUSH_AFTER_SECONDS) for a write it
    shares, on a buffered stream and an unbuffered one (PYTHONUNBUFFERED); a stdlib line or a
    warning writes it first, and nothing is lost or reordered."""
    path = tmp_path / "out.log"
    opened = (
        io.TextIOWrapper(io.FileIO(path, "w"), write_through=True) if unbuffered else path.open("w")
    )
    with opened as stream:
        logging_module.configure_logging(json=True, stream=stream, hold_info_lines=True)
        try:
            log = structlog.get_logger("test")
            log.info("first", n=1)
            assert path.read_text() == ""
            stdlib_logging.getLogger("lib").warning("from the standard library")
            log.info("second", n=2)
            assert "second" not in path.read_text()
            log.warning("third")
            assert "third" in path.read_text()
            log.info("fourth")
            await asyncio.sleep(0.01)
            assert "fourth" not in path.read_text()
            await asyncio.sleep(logging_module.FLUSH_AFTER_SECONDS + 0.05)
            docs = _json_lines(path.read_text(), "file")
        finally:
            logging_module.configure_logging(json=True, stream=sys.stdout)
    events = [d["event"] for d in docs]
    assert events == ["first", "from the standard library", "second", "third", "fourth"]
    assert docs[0]["level"] == "info"
    assert str(docs[0]["timestamp"]).endswith("Z")


async def test_without_holding_each_line_is_written_at_once(tmp_path: Path) -> None:
    """Other processes than the hub (the CLI, the ledger) write each line as it is logged."""
    path = tmp_path / "out.log"
    with path.open("w") as stream:
        logging_module.configure_logging(json=True, stream=stream)
        try:
            structlog.get_logger("test").info("at_once", n=1)
            docs = _json_lines(path.read_text(), "file")
        finally:
            logging_module.configure_logging(json=True, stream=sys.stdout)
    assert [(d["event"], d["n"], d["level"]) for d in docs] == [("at_once", 1, "info")]
