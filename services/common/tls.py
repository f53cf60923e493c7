"""The one place a TLS client context is built: trust a CA, present a client certificate.

Every Liaison program that connects to the broker (the hub, the command line, provisioning's
management API over https, the partner SDK) builds its ``ssl.SSLContext`` here, from three
files:

- a CA file to trust instead of the system's CAs (a private CA, e.g. ``make-dev-ca.sh``'s);
- a client certificate and its key, presented when the broker asks (mutual TLS), and the
  identity itself under certificate login (SASL EXTERNAL, user name = the subject's CN).

Services read them from ``LIAISON_TLS_CA_FILE``, ``LIAISON_TLS_CERT_FILE`` and
``LIAISON_TLS_KEY_FILE``; the SDK takes them as parameters. A file that is missing, unreadable
or not what it should be is a ConfigError naming the setting, raised before any connection is
tried, so a misconfigured process stops instead of retrying a handshake that cannot succeed.
The context itself is built by ``liaison.sdk.tls.client_context`` (the partner distribution
carries it); this module names the services' variables and turns its errors into ConfigError.
"""

import os
import ssl
from collections.abc import Mapping
from pathlib import Path

import msgspec

from liaison.common.errors import ConfigError
from liaison.sdk import tls as _sdk_tls
from liaison.sdk.tls import certificate_login

CA_FILE = "LIAISON_TLS_CA_FILE"
CERT_FILE = "LIAISON_TLS_CERT_FILE"
KEY_FILE = "LIAISON_TLS_KEY_FILE"


class TlsFiles(msgspec.Struct, frozen=True, kw_only=True):
    """The CA to trust and the client certificate to present; each optional."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "TlsFiles":
        """Read TLS file; an unset or empty variable means "not used"."""

        source = os.environ if env is None else env

        def path(name: str) -> Path | None:
            value = source.get(name, "").strip()
            return Path(value) if value else None

        return cls(ca_file=path(CA_FILE), cert_file=path(CERT_FILE), key_file=path(KEY_FILE))

    @property
    def configured(self) -> bool:
        """Any of the three files is set."""
        return any((self.ca_file, self.cert_file, self.key_file))

    def context(self, names: Mapping[str, str] | None = None) -> ssl.SSLContext:
        """The client context; errors name ``names[field]`` (the TLS file variable)."""
        return client_context(
            ca_file=self.ca_file, cert_file=self.cert_file, key_file=self.key_file, names=names
        )


_ENV_NAMES = {"ca_file": CA_FILE, "cert_file": CERT_FILE, "key_file": KEY_FILE}

__all__ = [
    "CA_FILE",
    "CERT_FILE",
    "KEY_FILE",
    "TlsFiles",
    "certificate_login",
    "client_context",
    "handshake_failure",
]


def client_context(
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    names: Mapping[str, str] | None = None,
) -> ssl.SSLContext:
    """The SDK's client context; a bad file is a ConfigError naming the TLS file setting
    (or ``names[field]``)."""
    try:
        return _sdk_tls.client_context(
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            names={**_ENV_NAMES, **(names or {})},
        )
    except _sdk_tls.TlsFileError as exc:
        raise ConfigError(str(exc)) from None


def handshake_failure(
    exc: BaseException,
    url_setting: str = "LIAISON_AMQP_URL",
    names: Mapping[str, str] | None = None,
) -> ConfigError | None:
    """The configuration error behind a failed connection, when TLS says it is one."""
    reason = _sdk_tls.handshake_failure(exc, url_setting, {**_ENV_NAMES, **(names or {})})
    return None if reason is None else ConfigError(reason)
