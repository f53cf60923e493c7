"""The ledger's configuration: one Settings read once from ``LIAISON_*`` variables.

Every field is reachable as ``LIAISON_<NAME>`` (the ledger's own ones prefixed with LEDGER_);
the constraints are in the types, so LedgerSettings built in code is checked the same way.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from liaison.common.settings import Secret, Settings
from liaison.directory.settings import AmqpUrl, HttpUrl, Name
from liaison.hub.admin import admin_token_from_env

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/liaison"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/liaison"

DatabaseUrl = Annotated[str, Meta(pattern=r"^postgres(ql)?://\S+$")]
Seconds = Annotated[float, Meta(gt=0)]


class LedgerSettings(Settings, frozen=True, kw_only=True):
    """Everything the ledger reads from its environment."""

    explain: ClassVar[dict[str, str]] = {
        "database_url": "must be a postgresql:// URL",
        "amqp_url": "must be an amqp:// or amqps:// URL",
        "replay_amqp_url": "must be an amqp:// or amqps:// URL",
    }
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})

    database_url: DatabaseUrl = DEFAULT_DATABASE_URL
    #: The account the ledger consumes its queue with (LIAISON_LEDGER_AMQP_URL).
    amqp_url: AmqpUrl = msgspec.field(default=DEFAULT_AMQP_URL, name="ledger_amqp_url")
    #: Account that replays dead letters: the operators' (it has the 'impersonator' tag, the
    #: ledger's own account has not); default: amqp_url.
    replay_amqp_url: AmqpUrl | None = msgspec.field(default=None, name="ledger_replay_url")
    #: The directory, to name the address each recipient was resolved from (optional).
    directory: Path | None = None
    http_host: Annotated[str, Meta(min_length=1)] = msgspec.field(
        default="127.0.0.1", name="ledger_host"
    )
    http_port: Annotated[int, Meta(ge=0, le=65535)] = msgspec.field(
        default=8090, name="ledger_port"
    )
    #: Bearer token for the API and console (LIAISON_LEDGER_TOKEN[_FILE], else the hub's
    #: LIAISON_ADMIN_TOKEN[_FILE]); without one, only loopback callers are served.
    token: Annotated[str, Meta(min_length=16)] | None = msgspec.field(
        default=None, name="ledger_token"
    )
    #: Management API, for inbox backlogs in the partner view.
    management_url: HttpUrl = "http://127.0.0.1:15672"
    management_user: Name = msgspec.field(default="guest", name="admin_user")
    management_password: Secret = msgspec.field(default=Secret("guest"), name="admin_password")
    vhost: Name = "liaison"
    prefetch: Annotated[int, Meta(ge=1, le=65535)] = msgspec.field(
        default=2000, name="ledger_prefetch"
    )
    #: Broker messages per transaction, at most (one message holds up to 256 hub records).
    batch_size: Annotated[int, Meta(ge=1)] = msgspec.field(default=500, name="ledger_batch")
    #: Bytes of messages per transaction, at most (at least one message): bounds how long one
    #: commit takes, so a record waits at most about two commits (the lag target is 1 s).
    batch_bytes: Annotated[int, Meta(ge=1)] = msgspec.field(
        default=512 * 1024, name="ledger_batch_bytes"
    )
    batch_wait_seconds: Seconds = msgspec.field(default=0.02, name="ledger_batch_wait_seconds")
    #: Keep message bodies (the default); off stores metadata and lifecycle only.
    keep_body: bool = msgspec.field(default=True, name="ledger_keep_body")
    #: Whole months of partitions kept by ``liaison ledger retention``.
    retention_months: Annotated[int, Meta(ge=1)] = msgspec.field(
        default=24, name="ledger_retention_months"
    )
    #: The hub's HTTP base (its /readyz shows in the console), if known.
    hub_url: HttpUrl | None = None
    #: An inbox whose oldest unread copy is older than this is flagged stale.
    stale_seconds: Seconds = msgspec.field(default=900.0, name="ledger_stale_seconds")
    #: How often the heads of the days that moved are signed (with ``hub_signing_key``; without
    #: it the chain is kept but no head is signed).
    head_seconds: Seconds = msgspec.field(default=60.0, name="ledger_head_seconds")
    reconnect_max_seconds: Seconds = msgspec.field(default=5.0, name="ledger_reconnect_max_seconds")
    log_level: Annotated[str, Meta(pattern=r"^(?i:debug|info|warning|error|critical)$")] = "info"
    #: The hub's signing key: status reports, which the ledger sends as the hub, are signed
    #: with it (unset: they go unsigned).
    hub_signing_key: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **parsed: object) -> "LedgerSettings":
        """Parse the environment; a bad value raises ConfigError naming the variable."""
        source = os.environ if env is None else env
        token_env = dict(source)
        # The ledger's own token when set, else the hub's admin token: one operator secret.
        if source.get("LIAISON_LEDGER_TOKEN") or source.get("LIAISON_LEDGER_TOKEN_FILE"):
            token_env["LIAISON_ADMIN_TOKEN"] = source.get("LIAISON_LEDGER_TOKEN", "")
            token_env["LIAISON_ADMIN_TOKEN_FILE"] = source.get("LIAISON_LEDGER_TOKEN_FILE", "")
        parsed.setdefault("token", admin_token_from_env(token_env))
        return super().from_env(source, **parsed)
