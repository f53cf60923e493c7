"""Starting and stopping the movers' processes, and sampling the hub's resident memory."""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import aiohttp
import psutil
import yarl

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_AMQP_PORT = 5672
#: ``rabbitmqctl`` arguments that reach the bench's broker when it is not the default node
#: (``--erlang-cookie C -n NAME``, as ``python -m liaison.nodes`` prints them).
RABBITMQCTL_ARGS_ENV = "LIAISON_BENCH_RABBITMQCTL_ARGS"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_hub(
    url: str,
    directory: Path,
    log_file: Path,
    *,
    shards: str = "all",
    module: str = "liaison.hub",
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m liaison.hub`` on the bench vhost, its JSON log lines to ``log_file``;
    returns the process and its HTTP port.

    ``env`` adds settings (``LIAISON_...``) on top of the bench's: how a bench module turns a
    feature on for its rounds. ``LIAISON_BENCH_HUB_ENV`` ("K=V K=V") applies to every start.
    """
    port = free_port()
    child_env = dict(os.environ)
    child_env.update(
        {
            "LIAISON_AMQP_URL": url,
            "LIAISON_DIRECTORY": str(directory),
            "LIAISON_HTTP_PORT": str(port),
            "LIAISON_HUB_SHARDS": shards,
            "LIAISON_SHUTDOWN_GRACE_SECONDS": "5",
        }
    )
    extra = os.environ.get("LIAISON_BENCH_HUB_ENV", "")
    for pair in extra.split():
        key, _, value = pair.partition("=")
        child_env[key] = value
    child_env.update(env or {})
    with log_file.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - the module is the bench's own constant
            [sys.executable, "-m", module], cwd=ROOT, env=child_env, stdout=log, stderr=log
        )
    return process, port


async def wait_ready(
    port: int, process: subprocess.Popen[bytes], limit_seconds: float = 60.0
) -> None:
    """Until ``/readyz`` on ``port`` answers 200: the hub's once it consumes every shard it owns,
    the ledger's once it consumes the records queue."""
    deadline = time.monotonic() + limit_seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"a bench process exited with {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"nothing ready on port {port} after {limit_seconds:.0f}s")


def start_peer(kind: str, url: str, src: str, log_file: Path) -> subprocess.Popen[bytes]:
    """One of ``bench.peers`` in its own process."""
    with log_file.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - our own module; URL and names are ours
            [sys.executable, "-m", "bench.peers", kind, url, src],
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )


async def stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while process.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0.05)
    if process.poll() is None:
        process.kill()
        process.wait()


def broker_pids(port: int | None = None) -> list[int]:
    """The process listening on the broker's AMQP ``port`` (the node's Erlang VM) and its
    descendants (``erl_child_setup`` and the helpers it starts)."""
    port = port or amqp_port()
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                break
            root = psutil.Process(conn.pid)
            return [root.pid, *(child.pid for child in root.children(recursive=True))]
    raise RuntimeError(f"no process of ours is seen listening on port {port}: is the broker local?")


def process_cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds a process has run, to the nanosecond where the kernel says so.

    ``cpu_times`` counts in clock ticks (10 ms): a round of a few hundred milliseconds of hub
    CPU would read 10-20 % off. The scheduler's per-thread run time (``schedstat``) is exact;
    summed over the live threads (the hub's and the Erlang VM's threads live as long as they
    do). Falls back to ``cpu_times`` where ``schedstat`` is missing.
    """
    try:
        total = 0
        for task in Path(f"/proc/{process.pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9
    except (FileNotFoundError, NotADirectoryError, PermissionError, ValueError):
        times = process.cpu_times()
        return float(times.user + times.system)


def amqp_port() -> int:
    """The AMQP port of the bench's broker (``LIAISON_BENCH_AMQP_URL``, 5672 by default)."""
    from bench.broker import ADMIN_AMQP_URL

    return yarl.URL(ADMIN_AMQP_URL).port or DEFAULT_AMQP_PORT


class CpuMeter:
    """CPU seconds (user + system) that some processes spend between ``mark`` and ``read``."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = list(pids)
        self._processes = [psutil.Process(pid) for pid in pids]
        self._marked = 0.0

    @classmethod
    def broker(cls, port: int | None = None) -> "CpuMeter":
        """The RabbitMQ node the bench talks to: its Erlang VM and the VM's own children.

        Found by the AMQP port it listens on, not by name: every ``rabbitmqctl`` call starts a
        short-lived ``beam.smp`` of its own, and extra nodes may run beside the broker; counting
        them charged their CPU to the round (one round read -667 us per message when such a VM
        exited between mark and read). With ``bench.broker.NODE_PORTS`` set (a cluster), every
        node's VM is counted.
        """
        if port is not None:
            return cls(broker_pids(port))
        from bench.broker import NODE_PORTS

        return cls([pid for p in (NODE_PORTS or [amqp_port()]) for pid in broker_pids(p)])

    def _now(self) -> float:
        total = 0.0
        for process in self._processes:
            with contextlib.suppress(psutil.Error, OSError):
                total += process_cpu_seconds(process)
        return total

    def mark(self) -> None:
        self._marked = self._now()

    def read(self) -> float:
        return self._now() - self._marked


class Background:
    """``_run()`` in a task of its own from ``start()`` until ``stop()`` cancels it."""

    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class RssSampler(Background):
    """Samples a process's resident set size in the background; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self.peak = 0
        self.last = 0

    def sample(self) -> int:
        with contextlib.suppress(psutil.Error):
            self.last = self._process.memory_info().rss
            self.peak = max(self.peak, self.last)
        return self.last

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self._interval)


async def roll_over_wal() -> bool:
    """Start a fresh quorum-queue write-ahead log on the local broker, if ``rabbitmqctl`` may.

    The broker rolls its WAL over when it reaches 512 MB, a pause of tens of milliseconds;
    a bench run writes several hundred MB, so without this the pause lands in whichever
    measurement happens to cross the limit (seen: a 38 ms p99 in one latency round).
    """
    # Plain rabbitmqctl talks to the default node; another node needs its name and cookie.
    node_args = os.environ.get(RABBITMQCTL_ARGS_ENV, "").split()
    if shutil.which("rabbitmqctl") is None or (amqp_port() != DEFAULT_AMQP_PORT and not node_args):
        return False
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        *node_args,
        "eval",
        "ra_log_wal:force_roll_over(ra_log_wal).",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode == 0 and output.strip().endswith(b"ok")


async def settle(
    limit_seconds: float = 30.0, broker_share: float = 0.1, machine_share: float = 0.3
) -> dict[str, Any]:
    """Roll the broker's WAL over, then wait until, over one second, the broker used under
    ``broker_share`` of a core and the whole machine under ``machine_share`` of its CPUs, or
    ``limit_seconds`` passed.

    After a throughput run the broker goes on working for seconds (quorum queue segments,
    deleting purged messages); measuring the next mover, or latency, in that wake would charge
    it for the previous one.
    """
    started = time.monotonic()
    rolled = await roll_over_wal()
    broker = CpuMeter.broker()
    psutil.cpu_percent()
    while True:
        broker.mark()
        await asyncio.sleep(1.0)
        busy_broker = broker.read()
        busy_machine = psutil.cpu_percent() / 100
        waited = time.monotonic() - started
        quiet = busy_broker < broker_share and busy_machine < machine_share
        if quiet or waited >= limit_seconds:
            return {
                "waited_s": round(waited, 1),
                "broker_cores": round(busy_broker, 3),
                "machine_share": round(busy_machine, 3),
                "quiet": quiet,
                "wal_rolled_over": rolled,
            }


async def broker_tail(
    background_cores: float, interval: float = 0.25, limit_seconds: float = 20.0
) -> dict[str, Any]:
    """What the broker still spends on a round after its last copy landed: roll the WAL over
    (writing the round's entries to the queues' segment files, which the broker otherwise
    does whenever 512 MB of WAL fill up: in some later round, or never within one), then
    wait until, over two ``interval`` in a row, it runs at ``background_cores`` (+0.05) again
    (two: the segment writer starts a moment after the roll-over returns).

    Returns the CPU seconds and the seconds waited; the caller takes the background out.
    """
    broker = CpuMeter.broker()
    broker.mark()
    started = time.monotonic()
    rolled = await roll_over_wal()
    quiet = 0
    while quiet < 2 and time.monotonic() - started < limit_seconds:
        before = broker.read()
        await asyncio.sleep(interval)
        busy = (broker.read() - before) / interval
        quiet = quiet + 1 if busy < background_cores + 0.05 else 0
    return {
        "cpu_s": broker.read(),
        "seconds": round(time.monotonic() - started, 3),
        "quiet": quiet >= 2,
        "wal_rolled_over": rolled,
    }
