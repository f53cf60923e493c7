"""The hub's configuration: one Settings read once from ``LIAISON_*`` variables.

Every field is reachable as ``LIAISON_<FIELD>`` (``shards`` as ``LIAISON_HUB_SHARDS``); the
constraints are in the types, so a HubSettings built in code is checked the same way.
"""

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta

from liaison.common.errors import ConfigError
from liaison.common.hub_key import HubKey, load_hub_key
from liaison.common.settings import Settings
from liaison.common.tls import TlsFiles, certificate_login
from liaison.common.topology import DEFAULT_SHARDS
from liaison.common.urls import (
    AMQP_SCHEMES,
    parse_url,
    password_of,
    redact_url,
    user_of,
    with_credentials,
)
from liaison.directory.credentials import load_credential
from liaison.directory.settings import HttpUrl
from liaison.hub.admin import admin_token_from_env
from liaison.schemas.wire import MAX_MESSAGE_BYTES

DEFAULT_AMQP_URL = "amqp://liaison-hub@127.0.0.1:5672/liaison"
#: Shorter admin tokens are refused: they could be guessed.
MIN_ADMIN_TOKEN = 16

#: More nodes than any cluster Liaison runs on: a longer list is a mistake, not a cluster.
MAX_BROKER_URLS = 16

Seconds = Annotated[float, Meta(ge=0)]
RedisUrl = Annotated[str, Meta(pattern=r"^(rediss?://[^/?#\s]+(/\S*)?|unix:///\S+)$")]


class HubSettings(Settings, frozen=True, kw_only=True):
    """Everything the hub reads from its environment."""

    explain: ClassVar[dict[str, str]] = {
        "amqp_url": "must be an amqp:// or amqps:// URL",
        "admin_token": f"must be at least {MIN_ADMIN_TOKEN} characters",
        "redis_url": "must be a redis://, rediss:// or unix:// URL",
        "management_url": "must be an http:// or https:// URL without credentials",
    }
    secret_fields: ClassVar[frozenset[str]] = frozenset({"admin_token"})

    #: Broker, account and vhost, or a cluster's nodes comma-separated: the hub connects to one
    #: at a time and moves on to the next when it cannot reach it or loses it. Without a
    #: password, the account's provisioned credential.
    amqp_url: Annotated[str, Meta(min_length=1)] = DEFAULT_AMQP_URL
    directory: Path = Path("deploy/directory.toml")
    shard_count: Annotated[int, Meta(ge=1, le=1024)] = DEFAULT_SHARDS
    #: Shards this process consumes; several processes split the shards between them.
    #: Empty means all of them (LIAISON_HUB_SHARDS=all).
    shards: tuple[Annotated[int, Meta(ge=0)], ...] = msgspec.field(default=(), name="hub_shards")
    prefetch: Annotated[int, Meta(ge=1, le=65535)] = 256
    dedupe_window_seconds: Seconds = 3600.0
    dedupe_max_entries: Annotated[int, Meta(ge=1)] = 200_000
    max_message_bytes: Annotated[int, Meta(ge=1024)] = MAX_MESSAGE_BYTES
    http_host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"
    http_port: Annotated[int, Meta(ge=0, le=65535)] = 8080
    log_level: Annotated[str, Meta(pattern=r"^(?i:debug|info|warning|error|critical)$")] = "info"
    shutdown_grace_seconds: Seconds = 15.0
    reconnect_max_seconds: Annotated[float, Meta(gt=0)] = 10.0
    confirm_timeout_seconds: Annotated[float, Meta(gt=0)] = 30.0
    #: How a delivery's publishes and its ingress ack reach the broker. ``confirm``: publisher
    #: confirms on a publishing channel, the ack once they are in (a hub killed in between has
    #: its in-flight publishes repeated by the next). ``transaction``: publishes and acks in one
    #: AMQP transaction per batch on the consuming channel (no repeats after a kill; the hub
    #: itself refuses copies to an inbox near its max length, since a transaction is never
    #: told of a full one: see ``inbox_headroom`` and docs/operations.md; and a kill just after a
    #: commit can lose copies on RabbitMQ 3.10's quorum queues, so it publishes only to classic
    #: ones, LIAISON_QUEUE_TYPE=classic, and is not the default).
    delivery: Literal["confirm", "transaction"] = "confirm"
    #: How long a publish the broker nacked is sent again (a quorum queue whose leader moved,
    #: or a full one: the nack does not say which) before its sender is answered 502.
    nack_retry_seconds: Seconds = 20.0
    #: Bearer token for /admin/*; without one, only loopback callers may administer.
    admin_token: Annotated[str, Meta(min_length=MIN_ADMIN_TOKEN)] | None = None
    #: Redis holding what the hub delivered, shared by every hub process; None: this process's
    #: own memory only (redis://, rediss:// or unix://).
    redis_url: RedisUrl | None = None
    redis_prefix: Annotated[str, Meta(min_length=1, max_length=128)] = "liaison:memory:"
    #: Seconds between checks that every inbox queue exists (a missing one is reported).
    inbox_check_seconds: Annotated[float, Meta(ge=0.1)] = 10.0
    #: Transaction mode: a copy is refused 502 once its inbox holds (as last read, plus this
    #: process's copies not yet committed at that read, plus its copies since) its max length
    #: minus this many, or minus a tenth of the max length when that is less. It must cover
    #: what other hub processes (and the ledger, and operators' replays) have in flight plus
    #: what they put into one inbox in ``inbox_watch_seconds``.
    inbox_headroom: Annotated[int, Meta(ge=1)] = 4000
    #: Transaction mode: how old an inbox's depth reading may be, once the inbox is near its
    #: limit, before the next copy to it waits for a fresh one.
    inbox_watch_seconds: Annotated[float, Meta(gt=0)] = 0.5
    #: Transaction mode: seconds between reads of the inboxes' length limits (policies and
    #: operator policies included) from the management API.
    inbox_limits_seconds: Annotated[float, Meta(ge=0.1)] = 1.0
    #: Transaction mode: the management API, read with the hub's account (its ``management``
    #: tag) for the inboxes' length limits, policies and operator policies included.
    management_url: HttpUrl = "http://127.0.0.1:15672"
    #: For amqps://: a CA to trust instead of the system's, and a client certificate and key
    #: (the login itself with certificate login, ``?auth=external``).
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: The hub's Ed25519 private key (PKCS#8 PEM, with ``<file>.json`` naming its kid and
    #: validity): error reports are signed with it. None: reports go unsigned.
    hub_signing_key: Path | None = None

    def hub_key(self) -> HubKey | None:
        """The hub's signing key, read from ``hub_signing_key``; ConfigError if unusable."""
        return None if self.hub_signing_key is None else load_hub_key(self.hub_signing_key)

    def check(self) -> None:
        """Shards below the shard count (all of them when none are named); transaction delivery
        on one node only; usable TLS files."""
        if not self.shards:
            msgspec.structs.force_setattr(self, "shards", tuple(range(self.shard_count)))
        if any(shard >= self.shard_count for shard in self.shards):
            raise ConfigError(f"LIAISON_HUB_SHARDS must name shards 0..{self.shard_count - 1}")
        broker_urls(self.amqp_url)
        if self.delivery == "transaction" and len(self.amqp_urls) > 1:
            # Measured: after the hub's node was killed, transactions to quorum queues whose
            # leader had moved committed while the copies never reached the inboxes.
            raise ConfigError(
                "LIAISON_DELIVERY=transaction is for a single broker node: with several nodes in "
                "LIAISON_AMQP_URL use confirm (see 'Repeats after a crash' in docs/operations.md)"
            )
        self._check_tls()

    @property
    def amqp_urls(self) -> tuple[str, ...]:
        """The broker nodes to try, in order (one for a single broker)."""
        return tuple(part.strip() for part in self.amqp_url.split(",") if part.strip())

    def _shown(self, name: str) -> object:
        if name == "amqp_url":
            return ",".join(redact_url(url) for url in self.amqp_urls)
        return super()._shown(name)

    @property
    def tls(self) -> TlsFiles:
        """The CA to trust and the client certificate to present (the TLS file settings)."""
        return TlsFiles(
            ca_file=self.tls_ca_file, cert_file=self.tls_cert_file, key_file=self.tls_key_file
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for an amqps:// URL (built from the files each time, so a renewed
        certificate is picked up on reconnect); None for amqp://."""
        if not self.amqp_url.startswith("amqps://"):
            return None
        return self.tls.context()

    def _check_tls(self) -> None:
        # A bad file stops the hub before it tries to connect, naming the variable.
        tls = self.tls
        if not self.amqp_url.startswith("amqps://"):
            if tls.configured:
                raise ConfigError("TLS files are set but LIAISON_AMQP_URL is amqp://: use amqps://")
            return
        if certificate_login(self.amqp_urls[0]) and tls.cert_file is None:
            raise ConfigError(
                "LIAISON_TLS_CERT_FILE is required: LIAISON_AMQP_URL asks for certificate login "
                "(?auth=external)"
            )
        tls.context()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **parsed: object) -> "HubSettings":
        """Parse the environment; a bad value raises ConfigError naming the variable."""
        source = os.environ if env is None else env
        # Two variables need more than a conversion: a list of shards (or 'all'), and a
        # token that may come from a file.
        shards = (source.get("LIAISON_HUB_SHARDS") or "all").strip()
        parsed.setdefault("shards", () if shards == "all" else parse_shard_list(shards))
        token = admin_token_from_env(source)
        parsed.setdefault("admin_token", token)
        settings = super().from_env(source, **parsed)
        # A URL that names only the account takes its provisioned credential.
        with_password = ",".join(_with_credential(url, source) for url in settings.amqp_urls)
        if with_password == settings.amqp_url:
            return settings
        return msgspec.structs.replace(settings, amqp_url=with_password)


def _with_credential(url: str, env: Mapping[str, str]) -> str:
    # A URL without a password takes the account's provisioned credential, so the secret
    # never has to sit in an environment variable or a process listing.
    # Certificate login (?auth=external) has no password: the certificate is the credential.
    account = user_of(url)
    if password_of(url) is not None or not account or certificate_login(url):
        return url
    return with_credentials(url, account, load_credential(account, env))


def parse_shard_list(raw: str) -> tuple[int, ...]:
    """A comma list such as ``0,2``: shard numbers, deduplicated and sorted."""
    try:
        shards = tuple(sorted({int(part) for part in raw.split(",") if part.strip()}))
    except ValueError:
        raise ConfigError(
            f"LIAISON_HUB_SHARDS must be 'all' or a list like 0,2; got {raw!r}"
        ) from None
    if not shards or any(s < 0 for s in shards):
        raise ConfigError(f"LIAISON_HUB_SHARDS must name shards from 0; got {raw!r}")
    return shards


def parse_shards(raw: str, shard_count: int) -> tuple[int, ...]:
    """``all`` or a comma list such as ``0,2``; each shard below ``shard_count``."""
    if raw.strip() == "all":
        return tuple(range(shard_count))
    shards = parse_shard_list(raw)
    if any(s >= shard_count for s in shards):
        raise ConfigError(f"LIAISON_HUB_SHARDS must name shards 0..{shard_count - 1}; got {raw!r}")
    return shards


def broker_urls(raw: str) -> tuple[str, ...]:
    """``LIAISON_AMQP_URL`` as its comma-separated nodes, each checked, all of one scheme.

    A comma inside a password must be written ``%2C`` (as any reserved character in a URL).
    """
    parts = [part.strip() for part in raw.split(",")]
    if any(not part for part in parts):
        raise ConfigError("LIAISON_AMQP_URL has an empty entry in its comma-separated list")
    if len(parts) > MAX_BROKER_URLS:
        raise ConfigError(
            f"LIAISON_AMQP_URL lists {len(parts)} URLs; at most {MAX_BROKER_URLS} broker nodes"
        )
    schemes = {parse_url("LIAISON_AMQP_URL", part, AMQP_SCHEMES).scheme for part in parts}
    if len(schemes) > 1:
        # One TLS setting serves every node: a list half amqp://, half amqps:// is a mistake.
        raise ConfigError("LIAISON_AMQP_URL mixes amqp:// and amqps:// URLs; use one scheme")
    return tuple(parts)
