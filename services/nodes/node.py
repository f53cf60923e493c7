"""An extra RabbitMQ node on this machine, beside the broker on 5672, from the installed server.

    with BrokerNode.start(plugins=("rabbitmq_management",)) as node:
        connection = await aio_pika.connect(node.amqp_url())

Each node has its own name (``<prefix>-<random>@localhost``), ports picked free at start, data,
log, plugin list and Erlang cookie under one temporary directory owned by the ``rabbitmq`` user,
and a ``rabbitmq.conf`` that moves every listener off the shared node's ports. Nothing of the
node on 5672 is read or changed: the enabled plugins come from the node's own file
(``RABBITMQ_ENABLED_PLUGINS_FILE``), so a plugin a test needs (``rabbitmq_auth_mechanism_ssl``)
is enabled on this node only. ``stop`` ends the node with SIGTERM (RabbitMQ shuts down cleanly
on it, faster than a ``rabbitmqctl stop`` round trip), SIGKILL if it hangs, and removes the
directory. Nodes that must cluster share a ``cookie``.

Needs root (the server is started as ``rabbitmq``, as the Debian wrapper does) or the
``rabbitmq`` user itself.
"""

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

from liaison.common.errors import BrokerError

#: The Debian package's server script; /usr/sbin/rabbitmq-server only wraps it in ``su``.
SERVER_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
BROKER_USER = "rabbitmq"
#: What provisioning and the hub need of a broker (deploy/broker.sh enables these and more).
LIAISON_PLUGINS = ("rabbitmq_management", "rabbitmq_consistent_hash_exchange")
#: Loopback only: an extra node is for this machine's tests and trials.
HOST = "127.0.0.1"


class NodeError(BrokerError):
    """The extra node could not be started, or did not answer in time."""


@dataclass(frozen=True, kw_only=True)
class NodeTls:
    """Certificate files for the node's amqps (and optionally https management) listener."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    #: Refuse clients that present no certificate (mutual TLS for everyone).
    require_client_cert: bool = False
    #: Certificate login: SASL EXTERNAL only, the user name is the certificate's subject CN.
    cert_login: bool = False
    #: Serve the management API over https on ``management_port`` instead of http.
    management_over_tls: bool = False


@dataclass(kw_only=True)
class Ports:
    """The node's listeners, all on loopback; each picked free when the node starts."""

    amqp: int
    amqps: int
    dist: int
    management: int
    prometheus: int

    @classmethod
    def pick(cls) -> "Ports":
        """Five ports the kernel says are free now (held open together so they differ)."""
        with contextlib.ExitStack() as stack:
            sockets = [stack.enter_context(socket.socket()) for _ in range(5)]
            for sock in sockets:
                sock.bind((HOST, 0))
            amqp, amqps, dist, management, prometheus = (s.getsockname()[1] for s in sockets)
        return cls(amqp=amqp, amqps=amqps, dist=dist, management=management, prometheus=prometheus)


@dataclass(kw_only=True)
class BrokerNode:
    """A running extra node; ``stop`` (or leaving the ``with`` block) ends and removes it."""

    name: str
    ports: Ports
    directory: Path
    cookie: str
    plugins: tuple[str, ...]
    tls: NodeTls | None
    process: subprocess.Popen[bytes] | None = None
    started_in: float = 0.0
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(
        cls,
        *,
        prefix: str = "liaison-node",
        plugins: Sequence[str] = ("rabbitmq_management",),
        tls: NodeTls | None = None,
        config: str = "",
        config_template: str | None = None,
        cookie: str | None = None,
        timeout: float = 90.0,
    ) -> "BrokerNode":
        """Start a node and wait until its listeners answer; on failure nothing is left behind.

        ``config`` is appended to the generated ``rabbitmq.conf`` (keys of enabled plugins only:
        RabbitMQ refuses keys it has no schema for). ``config_template`` replaces the generated
        file instead (to boot a shipped configuration): ``{amqp}``, ``{amqps}``, ``{management}``,
        ``{prometheus}`` and ``{tls_dir}`` in it become this node's ports and certificate folder.
        """
        wanted = tuple(dict.fromkeys([*plugins, *_tls_plugins(tls)]))
        ports = Ports.pick()
        directory = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
        node = cls(
            name=f"{prefix}-{secrets.token_hex(3)}@localhost",
            ports=ports,
            directory=directory,
            cookie=cookie or secrets.token_hex(16),
            plugins=wanted,
            tls=tls,
        )
        try:
            node._prepare(config, config_template)
            node._launch(timeout)
        except BaseException:
            node.stop()
            raise
        return node

    # --- addresses ---------------------------------------------------------------------------

    def amqp_url(
        self,
        user: str = "guest",
        password: str = "guest",  # noqa: S107 - RabbitMQ's loopback-only default account
        vhost: str = "/",
    ) -> str:
        """The plain AMQP URL of this node (loopback), as ``user`` on ``vhost``."""
        return (
            f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{HOST}:{self.ports.amqp}"
            f"/{quote(vhost, safe='')}"
        )

    def amqps_url(self, vhost: str = "/", host: str = "localhost") -> str:
        """The amqps URL without credentials; ``host`` must match the server certificate."""
        return f"amqps://{host}:{self.ports.amqps}/{quote(vhost, safe='')}"

    @property
    def management_url(self) -> str:
        """The management API's base URL (https when the TLS settings ask for it)."""
        if self.tls is not None and self.tls.management_over_tls:
            return f"https://localhost:{self.ports.management}"
        return f"http://{HOST}:{self.ports.management}"

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl`` against this node (with its own cookie); return its output."""
        # The arguments are the caller's and the node's own, never outside input.
        result = subprocess.run(  # noqa: S603
            # The installed CLI on PATH, as deploy/broker.sh uses it.
            ["rabbitmqctl", "--erlang-cookie", self.cookie, "-n", self.name, *args],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise NodeError(f"rabbitmqctl {' '.join(args)} on {self.name}: {result.stderr.strip()}")
        return result.stdout

    # --- lifecycle ---------------------------------------------------------------------------

    def _prepare(self, extra_config: str, template: str | None) -> None:
        for sub in ("mnesia", "log", "tls"):
            (self.directory / sub).mkdir()
        (self.directory / ".erlang.cookie").write_text(self.cookie)
        (self.directory / ".erlang.cookie").chmod(0o400)
        (self.directory / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")
        if self.tls is not None:
            # The broker runs as rabbitmq and must read its key: copies in the node's directory.
            for source, target in (
                (self.tls.ca_file, "ca_certificate.pem"),
                (self.tls.cert_file, "server_certificate.pem"),
                (self.tls.key_file, "server_key.pem"),
            ):
                shutil.copyfile(source, self.directory / "tls" / target)
        if template is None:
            conf = "\n".join([*self._config_lines(), extra_config, ""])
        else:
            conf = template.format(
                amqp=self.ports.amqp,
                amqps=self.ports.amqps,
                management=self.ports.management,
                prometheus=self.ports.prometheus,
                tls_dir=self.directory / "tls",
            )
        (self.directory / "rabbitmq.conf").write_text(conf)
        if os.geteuid() == 0:
            broker = pwd.getpwnam(BROKER_USER)
            for path in (self.directory, *self.directory.rglob("*")):
                os.chown(path, broker.pw_uid, broker.pw_gid)

    def _config_lines(self) -> Iterator[str]:
        yield f"listeners.tcp.1 = {HOST}:{self.ports.amqp}"
        yield "loopback_users.guest = true"
        if "rabbitmq_prometheus" in self.plugins:
            yield f"prometheus.tcp.ip = {HOST}"
            yield f"prometheus.tcp.port = {self.ports.prometheus}"
        tls_dir = self.directory / "tls"
        management_tls = self.tls is not None and self.tls.management_over_tls
        if "rabbitmq_management" in self.plugins:
            prefix = "management.ssl" if management_tls else "management.tcp"
            yield f"{prefix}.ip = {HOST}"
            yield f"{prefix}.port = {self.ports.management}"
            if management_tls:
                yield f"management.ssl.cacertfile = {tls_dir / 'ca_certificate.pem'}"
                yield f"management.ssl.certfile = {tls_dir / 'server_certificate.pem'}"
                yield f"management.ssl.keyfile = {tls_dir / 'server_key.pem'}"
        if self.tls is None:
            return
        yield f"listeners.ssl.1 = {HOST}:{self.ports.amqps}"
        yield f"ssl_options.cacertfile = {tls_dir / 'ca_certificate.pem'}"
        yield f"ssl_options.certfile = {tls_dir / 'server_certificate.pem'}"
        yield f"ssl_options.keyfile = {tls_dir / 'server_key.pem'}"
        yield "ssl_options.verify = verify_peer"
        require = "true" if self.tls.require_client_cert or self.tls.cert_login else "false"
        yield f"ssl_options.fail_if_no_peer_cert = {require}"
        if self.tls.cert_login:
            yield "auth_mechanisms.1 = EXTERNAL"
            yield "ssl_cert_login_from = common_name"

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            HOME=str(self.directory),
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS=HOST,
            RABBITMQ_NODE_PORT=str(self.ports.amqp),
            RABBITMQ_DIST_PORT=str(self.ports.dist),
            RABBITMQ_MNESIA_BASE=str(self.directory / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.directory / "log"),
            RABBITMQ_PID_FILE=str(self.directory / "node.pid"),
            RABBITMQ_CONFIG_FILE=str(self.directory / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.directory / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.directory / "enabled_plugins"),
        )
        return env

    def _launch(self, timeout: float) -> None:
        if not SERVER_SCRIPT.exists():
            raise NodeError(f"{SERVER_SCRIPT} not found: install rabbitmq-server (make broker)")
        as_root = os.geteuid() == 0
        if not as_root and pwd.getpwuid(os.geteuid()).pw_name != BROKER_USER:
            raise NodeError(f"an extra node needs root or the {BROKER_USER} user")
        began = time.monotonic()
        with (self.directory / "server.out").open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed path, no outside input
                [str(SERVER_SCRIPT)],
                cwd=self.directory,
                env=self._environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                user=BROKER_USER if as_root else None,
                group=BROKER_USER if as_root else None,
                # Its own process group: a Ctrl-C in the test run reaches the node only via stop.
                start_new_session=True,
            )
        ports = [self.ports.amqp]
        if self.tls is not None:
            ports.append(self.ports.amqps)
        if "rabbitmq_management" in self.plugins:
            ports.append(self.ports.management)
        deadline = began + timeout
        # The AMQP listeners open last in the boot sequence: once they accept, the node is up.
        for port in ports:
            while not _accepts(port):
                if self.process.poll() is not None:
                    raise NodeError(f"{self.name} exited while starting:\n{self.boot_errors()}")
                if time.monotonic() > deadline:
                    raise NodeError(f"{self.name} did not answer within {timeout:.0f}s")
                time.sleep(0.2)
        self.started_in = time.monotonic() - began

    def boot_errors(self, lines: int = 12) -> str:
        """The first error lines of the node's console: why a boot failed, before the dump."""
        with contextlib.suppress(OSError):
            text = (self.directory / "server.out").read_text(errors="replace")
            errors = [line for line in text.splitlines() if "[error]" in line]
            return "\n".join((errors or text.splitlines())[:lines])
        return "(no console output)"

    @property
    def alive(self) -> bool:
        """Whether the node's server process is still running."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the node (a machine lost, no clean shutdown), keeping its data directory."""
        if self.process is None or self.process.poll() is not None:
            return
        # The whole group started with the node: the script and the Erlang VM under it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def restart(self, timeout: float = 90.0) -> None:
        """Boot the node again with the same name, ports and data (after ``kill``)."""
        if self._stopped:
            raise NodeError(f"{self.name} was stopped and its directory removed")
        if self.alive:
            raise NodeError(f"{self.name} is still running")
        self._launch(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """End the node (SIGTERM, then SIGKILL past ``timeout``) and remove its directory."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.process is not None and self.process.poll() is None:
                # The server script passes SIGTERM on to the Erlang VM, which shuts down cleanly.
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    # The group started with the node (epmd daemonises out of it): script and VM.
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(10)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _tls_plugins(tls: NodeTls | None) -> tuple[str, ...]:
    return ("rabbitmq_auth_mechanism_ssl",) if tls is not None and tls.cert_login else ()


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0
