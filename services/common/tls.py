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
"""

import ssl
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec

from liaison.common.config import env_str
from liaison.common.errors import ConfigError

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
        """Read ``LIAISON_TLS_*``; an unset or empty variable means "not used"."""

        def path(name: str) -> Path | None:
            value = env_str(name, "", env)
            return Path(value) if value else None

        return cls(ca_file=path(CA_FILE), cert_file=path(CERT_FILE), key_file=path(KEY_FILE))

    @property
    def configured(self) -> bool:
        """Any of the three files is set."""
        return any((self.ca_file, self.cert_file, self.key_file))

    def context(self, names: Mapping[str, str] | None = None) -> ssl.SSLContext:
        """The client context; errors name ``names[field]`` (the ``LIAISON_TLS_*`` variable)."""
        return client_context(
            ca_file=self.ca_file, cert_file=self.cert_file, key_file=self.key_file, names=names
        )


def certificate_login(url: str) -> bool:
    """The URL asks for SASL EXTERNAL (``?auth=external``): the client certificate logs in."""
    return parse_qs(urlsplit(url).query).get("auth", [""])[-1].lower() == "external"


_ENV_NAMES = {"ca_file": CA_FILE, "cert_file": CERT_FILE, "key_file": KEY_FILE}


def client_context(
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    names: Mapping[str, str] | None = None,
) -> ssl.SSLContext:
    """A TLS 1.2+ client context that verifies the server's certificate and host name.

    Without ``ca_file`` the system's trusted CAs are used. ``key_file`` may be left out when the
    certificate file holds the key too. A bad file raises ConfigError naming the setting
    (``names`` maps ``ca_file``/``cert_file``/``key_file`` to what the caller calls them).
    """
    label = {**_ENV_NAMES, **(names or {})}
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        _readable(ca_file, label["ca_file"])
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except ssl.SSLError as exc:
            raise ConfigError(
                f"{label['ca_file']}: {ca_file} holds no usable CA certificate ({exc.reason})"
            ) from None
    if key_file is not None and cert_file is None:
        raise ConfigError(f"{label['key_file']} is set but {label['cert_file']} is not")
    if cert_file is not None:
        _readable(cert_file, label["cert_file"])
        if key_file is not None:
            _readable(key_file, label["key_file"])
        try:
            context.load_cert_chain(
                str(cert_file),
                None if key_file is None else str(key_file),
                # Never prompt on a terminal: a service has nobody to answer.
                password=_no_passphrase,
            )
        except (ssl.SSLError, _EncryptedKey) as exc:
            what = "an encrypted key (give it unencrypted, readable only by this account)"
            reason = what if isinstance(exc, _EncryptedKey) else str(exc.reason or exc)
            raise ConfigError(
                f"{label['cert_file']}/{label['key_file']}: cannot use the client certificate "
                f"{cert_file} with key {key_file or cert_file}: {reason}"
            ) from None
    return context


class _EncryptedKey(Exception):
    pass


def _no_passphrase() -> str:
    raise _EncryptedKey


def _readable(path: str | Path, setting: str) -> None:
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from None


# What the broker's TLS alert says about the certificate we presented (or did not).
_CLIENT_CERT_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "UNKNOWN_CA",
    "BAD_CERTIFICATE",
    "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "UNSUPPORTED_CERTIFICATE",
)
_HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH


def handshake_failure(
    exc: BaseException,
    url_setting: str = "LIAISON_AMQP_URL",
    names: Mapping[str, str] | None = None,
) -> ConfigError | None:
    """The configuration error behind a failed connection, when TLS says it is one.

    A broker certificate our CA does not vouch for, a host name it was not issued for, or a
    broker alert about our client certificate cannot heal by retrying: the returned ConfigError
    names the setting to fix. Anything else (refused, reset, timed out) returns None.
    """
    label = {**_ENV_NAMES, **(names or {})}
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            if cause.verify_code == _HOSTNAME_MISMATCH:
                return ConfigError(
                    f"{url_setting}: the broker's certificate is not issued for this host name "
                    f"({cause.verify_message})"
                )
            return ConfigError(
                f"{label['ca_file']}: the broker's certificate is not signed by a trusted CA "
                f"({cause.verify_message})"
            )
        # An SSLError made by hand (not by OpenSSL) has no ``reason``: fall back to its text.
        reason = str(getattr(cause, "reason", None) or cause)
        if isinstance(cause, ssl.SSLError) and any(a in reason for a in _CLIENT_CERT_ALERTS):
            return ConfigError(
                f"{label['cert_file']}: the broker refused the client certificate ({reason})"
            )
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    # aiormq wraps the ssl error: as __cause__/__context__, or as an argument.
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        todo.extend(c for c in (current.__cause__, current.__context__) if c is not None)
    return seen
