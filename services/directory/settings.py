"""Settings of provisioning and partner onboarding, read once from ``LIAISON_*`` variables.

Every value is parsed when the command starts, and a malformed one fails it with the
variable's name. The admin password is wrapped in :class:`Secret`, so neither a log line nor a
traceback that shows the settings can reveal it.
"""

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import msgspec

from liaison.common.config import amqp_url, env_int, env_str
from liaison.common.errors import ConfigError
from liaison.common.settings import Secret
from liaison.common.tls import TlsFiles
from liaison.common.topology import DEFAULT_SHARDS

DEFAULT_VHOST: Final = "liaison"
DEFAULT_MANAGEMENT_URL: Final = "http://127.0.0.1:15672"
DEFAULT_AMQP_URL: Final = "amqp://127.0.0.1:5672/"
DEFAULT_CREDENTIALS_DIR: Final = "./var/credentials"
DEFAULT_DIRECTORY: Final = "deploy/directory.toml"


class ProvisionSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the broker is, who administers it, and where partner credentials are kept."""

    vhost: str
    management_url: str
    admin_user: str
    admin_password: Secret
    #: Where partners connect; its host, port and scheme go into connection snippets.
    amqp_url: str
    credentials_dir: Path
    directory: Path
    #: Shard queues of the hub's ingress (LIAISON_SHARD_COUNT, as the hub reads it).
    shard_count: int = DEFAULT_SHARDS
    #: LIAISON_TLS_*: the CA that signed the broker's certificates (management https, amqps),
    #: and a client certificate where the broker asks for one.
    tls: TlsFiles = TlsFiles()

    def ssl_context(self, url: str) -> ssl.SSLContext | None:
        """The TLS context for an https:// or amqps:// ``url``; None for plain ones."""
        if urlsplit(url).scheme not in ("https", "amqps"):
            return None
        return self.tls.context()


def load_settings(env: Mapping[str, str] | None = None) -> ProvisionSettings:
    """Parse the provisioning settings; a bad value is a ConfigError naming its variable."""
    management_url = env_str("LIAISON_MANAGEMENT_URL", DEFAULT_MANAGEMENT_URL, env).rstrip("/")
    parts = urlsplit(management_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"LIAISON_MANAGEMENT_URL must be an http:// or https:// URL, got {management_url!r}"
        )
    if parts.username or parts.password:
        raise ConfigError(
            "LIAISON_MANAGEMENT_URL must not carry credentials; "
            "set LIAISON_ADMIN_USER and LIAISON_ADMIN_PASSWORD"
        )
    vhost = env_str("LIAISON_VHOST", DEFAULT_VHOST, env)
    tls = TlsFiles.from_env(env)
    if tls.configured:
        tls.context()  # a bad file fails the command now, naming its variable
    return ProvisionSettings(
        vhost=vhost,
        management_url=management_url,
        admin_user=env_str("LIAISON_ADMIN_USER", "guest", env),
        admin_password=Secret(env_str("LIAISON_ADMIN_PASSWORD", "guest", env)),
        amqp_url=amqp_url("LIAISON_AMQP_URL", DEFAULT_AMQP_URL, env),
        credentials_dir=Path(env_str("LIAISON_CREDENTIALS_DIR", DEFAULT_CREDENTIALS_DIR, env)),
        directory=Path(env_str("LIAISON_DIRECTORY", DEFAULT_DIRECTORY, env)),
        shard_count=env_int("LIAISON_SHARD_COUNT", DEFAULT_SHARDS, env, minimum=1),
        tls=tls,
    )
