"""A real hub process for tests outside tests/hub: ``python -m liaison.hub`` with given variables.

Used where what is pinned only exists in a whole process (settings read from the environment,
signals, what the process writes to its output).
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProcess:
    """One hub process; its stdout and stderr go to ``log``."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
        full.update(LIAISON_HTTP_PORT=str(self.port), LIAISON_LOG_LEVEL="info")
        full.update(env)
        self.log_path = log
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "liaison.hub"],
            cwd=ROOT,
            env=full,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def base_url(self) -> str:
        """Where the hub's HTTP endpoints answer."""
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll /readyz until the hub consumes every shard it owns."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, "hub exited: " + self.output()[-2000:]
                try:
                    async with session.get(f"{self.base_url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("hub never became ready: " + self.output()[-2000:])

    def output(self) -> str:
        """Everything the process wrote so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the hub, wait for it to exit, return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code
