"""Settings of provisioning, partner onboarding and the operator commands (``LIAISON_*``).

One :class:`~liaison.common.settings.Settings` each: every value is parsed when the command
starts, a malformed one fails it naming the variable, and the admin password is a
:class:`~liaison.common.settings.Secret`.
"""

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar, Final

from msgspec import Meta

from liaison.common.hub_key import DEFAULT_HUB_KEY
from liaison.common.settings import Secret, Settings
from liaison.common.tls import TlsFiles
from liaison.common.topology import DEFAULT_SHARDS, QueueType

#: An amqp:// or amqps:// URL with a host.
AmqpUrl = Annotated[str, Meta(pattern=r"^amqps?://[^/?#\s]+(/\S*)?$")]
#: An http:// or https:// URL with a host and no credentials in it.
HttpUrl = Annotated[str, Meta(pattern=r"^https?://[^/@?#\s]+(/[^@\s]*)?$")]
#: A vhost, user or account name.
Name = Annotated[str, Meta(min_length=1, max_length=255)]

DEFAULT_VHOST: Final = "liaison"
DEFAULT_CREDENTIALS_DIR: Final = "./var/credentials"


class ProvisionSettings(Settings, frozen=True, kw_only=True):
    """Where the broker is, who administers it, and where partner credentials are kept."""

    explain: ClassVar[dict[str, str]] = {
        "management_url": "must be an http:// or https:// URL without credentials "
        "(set LIAISON_ADMIN_USER and LIAISON_ADMIN_PASSWORD)",
        "amqp_url": "must be an amqp:// or amqps:// URL",
    }

    vhost: Name = DEFAULT_VHOST
    management_url: HttpUrl = "http://127.0.0.1:15672"
    admin_user: Name = "guest"
    admin_password: Secret = Secret("guest")
    #: Where partners connect; its host, port and scheme go into connection snippets.
    amqp_url: AmqpUrl = "amqp://127.0.0.1:5672/"
    credentials_dir: Path = Path(DEFAULT_CREDENTIALS_DIR)
    directory: Path = Path("deploy/directory.toml")
    #: Shard queues of the hub's ingress (LIAISON_SHARD_COUNT, as the hub reads it).
    shard_count: Annotated[int, Meta(ge=1, le=1024)] = DEFAULT_SHARDS
    #: Type of the inboxes, the ledger queue and the dead-letter queues; ``classic`` for
    #: transaction delivery on one node (the hub refuses it on quorum ones).
    queue_type: QueueType = "quorum"
    #: TLS files: the CA that signed the broker's certificates (management https, amqps),
    #: and a client certificate where the broker asks for one.
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: The hub's signing key (``LIAISON_HUB_SIGNING_KEY``, as the hub reads it): provisioning
    #: creates it when absent, and ``liaison partner keys`` publishes its public half.
    hub_signing_key: Path | None = None

    @property
    def hub_key_path(self) -> Path:
        """The hub's signing key file: the setting, or ``var/hub-signing.key``."""
        return self.hub_signing_key or DEFAULT_HUB_KEY

    def check(self) -> None:
        """A configured TLS file must be usable now: the command fails naming its variable."""
        if self.tls.configured:
            self.tls.context()

    @property
    def tls(self) -> TlsFiles:
        """The CA to trust and the client certificate to present."""
        return TlsFiles(
            ca_file=self.tls_ca_file, cert_file=self.tls_cert_file, key_file=self.tls_key_file
        )

    def ssl_context(self, url: str) -> ssl.SSLContext | None:
        """The TLS context for an https:// or amqps:// ``url``; None for plain ones."""
        if not url.startswith(("https://", "amqps://")):
            return None
        return self.tls.context()


class OperatorSettings(Settings, frozen=True, kw_only=True):
    """What the operator commands (``liaison dead-letters``, ``liaison demo``) read."""

    #: The operators' broker URL with credentials; unset: the directory's operator account.
    operator_url: AmqpUrl | None = None
    #: The append-only record of replays.
    replay_log: Path = Path("./var/replays.jsonl")
    #: Log level of the command line and the demo (the hub has its own default).
    log_level: Annotated[str, Meta(pattern=r"^(?i:debug|info|warning|error|critical)$")] = "warning"
    #: The demo hub's first HTTP port to try.
    http_port: Annotated[int, Meta(ge=1, le=65535)] = 8080
    #: The demo's partners' private signing keys, ``<org>.key`` (the sample directory's).
    demo_keys: Path = Path("deploy/demo-keys")


def load_settings(env: Mapping[str, str] | None = None) -> ProvisionSettings:
    """Parse the provisioning settings; a bad value is a ConfigError naming its variable."""
    return ProvisionSettings.from_env(env)
