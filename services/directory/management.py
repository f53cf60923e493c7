"""The one client for the RabbitMQ management HTTP API: provisioning, the bench and the tests.

Answers are decoded into frozen Structs; every failure — the API unreachable, credentials
refused, an object the broker will not accept — becomes a BrokerError whose message says what
was attempted and what the broker answered. A GET of something absent returns None or an empty
list rather than raising, because "absent" is an ordinary state when comparing.
"""

import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from liaison.common.errors import (
    BrokerAccessRefused,
    BrokerError,
    BrokerNotFound,
    BrokerUnreachable,
    broker_errors,
)
from liaison.common.settings import Secret
from liaison.common.tls import handshake_failure


class User(msgspec.Struct, frozen=True):
    """A broker user."""

    name: str
    password_hash: str = ""
    hashing_algorithm: str = ""
    tags: list[str] | str = []

    @property
    def tag_list(self) -> list[str]:
        """Tags as a list (older brokers answer a comma-separated string)."""
        if isinstance(self.tags, str):
            return [t for t in self.tags.split(",") if t]
        return self.tags


class Permission(msgspec.Struct, frozen=True):
    """A user's configure/write/read regexes on one vhost."""

    user: str
    vhost: str
    configure: str
    write: str
    read: str


class TopicPermission(msgspec.Struct, frozen=True):
    """A user's routing-key regexes on one topic exchange of one vhost."""

    user: str
    vhost: str
    exchange: str
    write: str
    read: str


class Exchange(msgspec.Struct, frozen=True):
    """An exchange as the broker reports it."""

    name: str
    type: str
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = {}


class Queue(msgspec.Struct, frozen=True):
    """A queue as the broker reports it; ``messages`` lags by a statistics interval."""

    name: str
    durable: bool = True
    auto_delete: bool = False
    arguments: dict[str, Any] = {}
    messages: int | None = None
    consumers: int | None = None
    #: The policy definition in force on the queue, once the broker has applied it.
    effective_policy_definition: dict[str, Any] | None = None
    #: ``quorum``, ``classic`` or ``stream``, as the broker reports it (never sent on a PUT).
    type: str | None = None


class Policy(msgspec.Struct, frozen=True, rename={"apply_to": "apply-to"}):
    """A policy or operator policy: what it sets on the objects whose name matches."""

    name: str
    pattern: str
    definition: dict[str, Any] = {}
    apply_to: str = "all"
    priority: int = 0


class Binding(msgspec.Struct, frozen=True):
    """A binding as the broker reports it."""

    source: str
    destination: str
    destination_type: str
    routing_key: str
    properties_key: str = ""
    arguments: dict[str, Any] = {}


class Connection(msgspec.Struct, frozen=True):
    """An open client connection."""

    name: str
    user: str = ""
    vhost: str = ""


T = TypeVar("T")

_USERS = msgspec.json.Decoder(list[User])
_USER = msgspec.json.Decoder(User | None)
_PERMISSIONS = msgspec.json.Decoder(list[Permission])
_TOPIC_PERMISSIONS = msgspec.json.Decoder(list[TopicPermission])
_EXCHANGES = msgspec.json.Decoder(list[Exchange])
_QUEUES = msgspec.json.Decoder(list[Queue])
_QUEUE = msgspec.json.Decoder(Queue | None)
_POLICIES = msgspec.json.Decoder(list[Policy])
_BINDINGS = msgspec.json.Decoder(list[Binding])
_CONNECTIONS = msgspec.json.Decoder(list[Connection])


def _q(segment: str) -> str:
    return quote(segment, safe="")


class ManagementClient:
    """Async client for ``/api``; use as ``async with ManagementClient(...) as api``."""

    def __init__(
        self,
        url: str,
        user: str,
        password: Secret,
        *,
        timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        settings: tuple[str, str] = ("LIAISON_MANAGEMENT_URL", "LIAISON_ADMIN_USER"),
    ) -> None:
        self.url = url.rstrip("/")
        #: The variables errors name: the URL's and the user's (the relay has its own).
        self._url_setting, self._user_setting = settings
        #: For https: the CA to trust and any client certificate (liaison.common.tls).
        self._ssl_context = ssl_context
        # aiohttp's own encoding (BasicAuth is deprecated in favour of it since aiohttp 3.12).
        self._headers = {"Authorization": aiohttp.encode_basic_auth(user, password.reveal())}
        self._user = user
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> Self:
        """Open the HTTP session (``async with`` does it for you)."""
        if self._session is None:
            connector = (
                None if self._ssl_context is None else aiohttp.TCPConnector(ssl=self._ssl_context)
            )
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=self._timeout, connector=connector
            )
        return self

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def request(self, method: str, path: str, body: object | None = None) -> Any:
        """Any API call, for what has no method here: the decoded JSON answer, or None."""
        payload = await self._call(method, path, body=body)
        if not payload:
            return None
        try:
            return msgspec.json.decode(payload)
        except msgspec.DecodeError:
            return None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: object | None = None,
        headers: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> bytes | None:
        if self._session is None:
            raise RuntimeError("ManagementClient used outside 'async with'")
        what = f"{method} {path}"
        try:
            with broker_errors(f"{what}: no answer from {self.url}"):
                try:
                    async with self._session.request(
                        method,
                        f"{self.url}/api{path}",
                        data=None if body is None else msgspec.json.encode(body),
                        headers={"content-type": "application/json", **(headers or {})},
                    ) as response:
                        payload = await response.read()
                        status = response.status
                except aiohttp.ClientConnectorCertificateError as exc:
                    # An untrusted or misnamed certificate does not heal by retrying: name the
                    # setting (a ConfigError passes through the mapping unchanged).
                    error = handshake_failure(exc.certificate_error, self._url_setting)
                    raise error or BrokerError(f"{self.url}: {exc.certificate_error}") from None
        except BrokerUnreachable as exc:
            raise BrokerUnreachable(
                f"cannot reach the management API at {self.url} ({self._url_setting}): {exc.detail}"
            ) from None
        if status == 404 and missing_ok:
            return None
        if status == 401:
            raise BrokerAccessRefused(
                f"the management API at {self.url} refused user {self._user!r} "
                f"(check {self._user_setting} and "
                f"{self._user_setting.removesuffix('_USER')}_PASSWORD)"
            )
        if status == 404:
            raise BrokerNotFound(f"{what}: not found: {_reason(payload)}")
        if status >= 300:
            raise BrokerError(f"{what}: broker answered {status}: {_reason(payload)}")
        return payload

    async def _get(self, path: str, decoder: msgspec.json.Decoder[T], default: T) -> T:
        payload = await self._call("GET", path, missing_ok=True)
        if payload is None:
            return default
        try:
            return decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise BrokerError(f"GET {path}: unexpected answer: {exc}") from None

    # -- vhosts ------------------------------------------------------------------------------
    async def vhost_exists(self, vhost: str) -> bool:
        """Whether ``vhost`` exists."""
        return await self._call("GET", f"/vhosts/{_q(vhost)}", missing_ok=True) is not None

    async def put_vhost(self, vhost: str) -> None:
        """Create ``vhost`` (the acting admin gets full permissions on it)."""
        await self._call("PUT", f"/vhosts/{_q(vhost)}", body={})

    async def delete_vhost(self, vhost: str) -> None:
        """Delete ``vhost`` with everything in it."""
        await self._call("DELETE", f"/vhosts/{_q(vhost)}", missing_ok=True)

    # -- users and permissions ---------------------------------------------------------------
    async def users(self) -> list[User]:
        """Every broker user."""
        return await self._get("/users", _USERS, [])

    async def user(self, name: str) -> User | None:
        """One user, or None."""
        return await self._get(f"/users/{_q(name)}", _USER, None)

    async def put_user(
        self, name: str, password_hash: str, algorithm: str, tags: tuple[str, ...] = ()
    ) -> None:
        """Create or update a user from a password hash; partners get no tags (no UI access)."""
        body = {
            "password_hash": password_hash,
            "hashing_algorithm": algorithm,
            "tags": ",".join(tags),
        }
        await self._call("PUT", f"/users/{_q(name)}", body=body)

    async def delete_user(self, name: str) -> None:
        """Delete a user (absent is fine)."""
        await self._call("DELETE", f"/users/{_q(name)}", missing_ok=True)

    async def permissions(self, vhost: str) -> list[Permission]:
        """Permissions on ``vhost``."""
        return await self._get(f"/vhosts/{_q(vhost)}/permissions", _PERMISSIONS, [])

    async def user_permissions(self, user: str) -> list[Permission]:
        """Permissions of ``user`` on every vhost."""
        return await self._get(f"/users/{_q(user)}/permissions", _PERMISSIONS, [])

    async def put_permission(self, p: Permission) -> None:
        """Set a user's permissions on a vhost."""
        body = {"configure": p.configure, "write": p.write, "read": p.read}
        await self._call("PUT", f"/permissions/{_q(p.vhost)}/{_q(p.user)}", body=body)

    async def delete_permission(self, vhost: str, user: str) -> None:
        """Remove a user's permissions on a vhost."""
        await self._call("DELETE", f"/permissions/{_q(vhost)}/{_q(user)}", missing_ok=True)

    async def topic_permissions(self, vhost: str) -> list[TopicPermission]:
        """Topic permissions on ``vhost``."""
        path = f"/vhosts/{_q(vhost)}/topic-permissions"
        return await self._get(path, _TOPIC_PERMISSIONS, [])

    async def put_topic_permission(self, p: TopicPermission) -> None:
        """Set a user's routing-key permissions on one exchange."""
        body = {"exchange": p.exchange, "write": p.write, "read": p.read}
        await self._call("PUT", f"/topic-permissions/{_q(p.vhost)}/{_q(p.user)}", body=body)

    async def delete_topic_permission(self, vhost: str, user: str) -> None:
        """Remove a user's topic permissions on a vhost."""
        path = f"/topic-permissions/{_q(vhost)}/{_q(user)}"
        await self._call("DELETE", path, missing_ok=True)

    # -- topology ----------------------------------------------------------------------------
    async def exchanges(self, vhost: str) -> list[Exchange]:
        """Exchanges on ``vhost``."""
        return await self._get(f"/exchanges/{_q(vhost)}", _EXCHANGES, [])

    async def put_exchange(self, vhost: str, e: Exchange) -> None:
        """Declare a durable exchange."""
        body = {
            "type": e.type,
            "durable": True,
            "auto_delete": False,
            "internal": e.internal,
            "arguments": e.arguments,
        }
        await self._call("PUT", f"/exchanges/{_q(vhost)}/{_q(e.name)}", body=body)

    async def queues(self, vhost: str) -> list[Queue]:
        """Queues on ``vhost``."""
        return await self._get(f"/queues/{_q(vhost)}", _QUEUES, [])

    async def queue_arguments(self, vhost: str) -> list[Queue]:
        """Queues on ``vhost`` with their names, arguments and types only, read without
        statistics (current, where statistics lag)."""
        path = f"/queues/{_q(vhost)}?disable_stats=true&columns=name,arguments,type"
        return await self._get(path, _QUEUES, [])

    async def queue(self, vhost: str, name: str) -> Queue | None:
        """One queue, or None."""
        return await self._get(f"/queues/{_q(vhost)}/{_q(name)}", _QUEUE, None)

    async def put_queue(self, vhost: str, q: Queue) -> None:
        """Declare a durable queue."""
        body = {"durable": True, "auto_delete": False, "arguments": q.arguments}
        await self._call("PUT", f"/queues/{_q(vhost)}/{_q(q.name)}", body=body)

    async def delete_queue(self, vhost: str, name: str) -> None:
        """Delete a queue, messages and all: callers check it is empty first."""
        await self._call("DELETE", f"/queues/{_q(vhost)}/{_q(name)}", missing_ok=True)

    async def bindings(self, vhost: str) -> list[Binding]:
        """Bindings on ``vhost``."""
        return await self._get(f"/bindings/{_q(vhost)}", _BINDINGS, [])

    async def post_binding(self, vhost: str, b: Binding) -> None:
        """Bind ``b.destination`` to ``b.source``."""
        kind = "q" if b.destination_type == "queue" else "e"
        path = f"/bindings/{_q(vhost)}/e/{_q(b.source)}/{kind}/{_q(b.destination)}"
        await self._call("POST", path, body={"routing_key": b.routing_key, "arguments": {}})

    async def delete_binding(self, vhost: str, b: Binding) -> None:
        """Remove one binding."""
        kind = "q" if b.destination_type == "queue" else "e"
        path = (
            f"/bindings/{_q(vhost)}/e/{_q(b.source)}/{kind}/{_q(b.destination)}"
            f"/{_q(b.properties_key)}"
        )
        await self._call("DELETE", path, missing_ok=True)

    # -- policies and shovels ----------------------------------------------------------------
    async def put_policy(
        self, vhost: str, name: str, pattern: str, definition: dict[str, Any]
    ) -> None:
        """A queue policy (tests use one to shrink a queue's length limit)."""
        body = {"pattern": pattern, "apply-to": "queues", "definition": definition}
        await self._call("PUT", f"/policies/{_q(vhost)}/{_q(name)}", body=body)

    async def policies(self, vhost: str) -> list[Policy]:
        """The policies of ``vhost``."""
        return await self._get(f"/policies/{_q(vhost)}", _POLICIES, [])

    async def operator_policies(self, vhost: str) -> list[Policy]:
        """The operator policies of ``vhost``."""
        return await self._get(f"/operator-policies/{_q(vhost)}", _POLICIES, [])

    async def put_operator_policy(
        self, vhost: str, name: str, pattern: str, definition: dict[str, Any]
    ) -> None:
        """An operator policy on queues (tests use one to shrink a queue's length limit)."""
        body = {"pattern": pattern, "apply-to": "queues", "definition": definition}
        await self._call("PUT", f"/operator-policies/{_q(vhost)}/{_q(name)}", body=body)

    async def delete_operator_policy(self, vhost: str, name: str) -> None:
        """Remove an operator policy (absent is fine)."""
        await self._call("DELETE", f"/operator-policies/{_q(vhost)}/{_q(name)}", missing_ok=True)

    async def delete_policy(self, vhost: str, name: str) -> None:
        """Remove a policy (absent is fine)."""
        await self._call("DELETE", f"/policies/{_q(vhost)}/{_q(name)}", missing_ok=True)

    async def put_shovel(self, vhost: str, name: str, value: dict[str, Any]) -> None:
        """A dynamic shovel (the bench's baseline mover)."""
        path = f"/parameters/shovel/{_q(vhost)}/{_q(name)}"
        await self._call("PUT", path, body={"value": value})

    # -- connections -------------------------------------------------------------------------
    async def connections(self, vhost: str) -> list[Connection]:
        """Open connections to ``vhost``."""
        return await self._get(f"/vhosts/{_q(vhost)}/connections", _CONNECTIONS, [])

    async def close_connection(self, name: str, reason: str) -> None:
        """Close a client connection, telling the client ``reason``."""
        path = f"/connections/{_q(name)}"
        await self._call("DELETE", path, headers={"X-Reason": reason}, missing_ok=True)


def _reason(payload: bytes) -> str:
    try:
        answer = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return payload.decode("utf-8", "replace")[:200] or "(no reason given)"
    if isinstance(answer, dict):
        return str(answer.get("reason") or answer.get("error") or answer)
    return str(answer)
