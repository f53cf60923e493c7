"""Settings of ``liaison relay`` (``LIAISON_*``): the site end, the headquarters end, or both.

The site end reads the site broker's management API and AMQP URL, where its shovels reach the
tunnel (``relay_listen``) and where the link's far end is (``relay_link``); the headquarters end
listens on ``relay_link`` and forwards to the headquarters broker (``relay_broker``).
"""

from pathlib import Path
from typing import Annotated, ClassVar, Final

from msgspec import Meta

from liaison.common.settings import Secret, Settings
from liaison.directory.settings import (
    DEFAULT_CREDENTIALS_DIR,
    DEFAULT_VHOST,
    AmqpUrl,
    HttpUrl,
    Name,
)

#: ``host:port``.
Address = Annotated[str, Meta(pattern=r"^[^\s:/]+:[0-9]{1,5}$")]
SiteId = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9-]{1,47}$")]

DEFAULT_HTTP_PORT: Final = 9480


class RelaySettings(Settings, frozen=True, kw_only=True):
    """Where the site broker, the tunnel's two ends and the headquarters broker are."""

    explain: ClassVar[dict[str, str]] = {
        "relay_listen": "must be host:port",
        "relay_link": "must be host:port",
        "relay_broker": "must be host:port",
        "site_management_url": "must be an http:// or https:// URL without credentials",
        "site_amqp_url": "must be an amqp:// or amqps:// URL",
    }

    #: The ``[[sites]]`` id this relay serves (the site end needs it).
    site: SiteId | None = None
    directory: Path = Path("deploy/directory.toml")
    vhost: Name = DEFAULT_VHOST
    #: The site account's password (copied from headquarters) and the site partners' ones.
    credentials_dir: Path = Path(DEFAULT_CREDENTIALS_DIR)
    site_management_url: HttpUrl = "http://127.0.0.1:15672"
    site_admin_user: Name = "guest"
    site_admin_password: Secret = Secret("guest")
    #: The site broker, as the relay's sorter logs in (an administrator on loopback).
    site_amqp_url: AmqpUrl = "amqp://guest:guest@127.0.0.1:5672/liaison"
    #: Site end: where the site broker's shovels reach the tunnel (loopback).
    relay_listen: Address = "127.0.0.1:5673"
    #: The link: the headquarters end listens here; the site end connects here.
    relay_link: Address = "127.0.0.1:5680"
    #: Headquarters end: the headquarters broker's AMQP listener.
    relay_broker: Address = "127.0.0.1:5672"
    relay_zstd_level: Annotated[int, Meta(ge=1, le=19)] = 6
    #: Most messages each site queue holds before the site broker refuses more (never drops).
    relay_queue_max_length: Annotated[int, Meta(ge=100)] = 100_000
    #: Unconfirmed messages in flight on the link per shovel: small for flash, so a flash
    #: message waits behind few routine bytes; larger for routine, to fill a long round trip.
    relay_flash_prefetch: Annotated[int, Meta(ge=1, le=10_000)] = 20
    relay_routine_prefetch: Annotated[int, Meta(ge=1, le=10_000)] = 500
    #: AMQP heartbeat of the shovels' connections over the link: how soon a dead link is seen.
    relay_heartbeat_seconds: Annotated[int, Meta(ge=1, le=600)] = 10
    relay_http_host: Name = "127.0.0.1"
    relay_http_port: Annotated[int, Meta(ge=0, le=65535)] = DEFAULT_HTTP_PORT
    log_level: Annotated[str, Meta(pattern=r"^(?i:debug|info|warning|error|critical)$")] = "info"


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` as a pair."""
    host, _, port = address.rpartition(":")
    return host, int(port)
