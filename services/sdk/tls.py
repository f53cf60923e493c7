"""TLS for the partner side: trust a private CA, present a client certificate, read failures.

    context = tls_context(ca_file="ca_certificate.pem",
                          cert_file="client-mag_certificate.pem", key_file="client-mag_key.pem")
    async with Client.connect("mag", "amqps://broker.example.org/liaison?auth=external",
                              ssl_context=context) as client: ...

Any ``ssl.SSLContext`` works (as with aio-pika). ``client_context`` here is the one function
that builds a Liaison TLS context — the hub, the command line and provisioning use it too,
through ``liaison.common.tls``, which names their TLS file variables in its errors:
TLS 1.2 or later, the broker's certificate and host name verified. It lives in the SDK so that
the partner distribution stands alone.
"""

import ssl
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from liaison.sdk.errors import ConnectFailed

#: Errors name this module's parameters unless the caller names its own settings.
PARAMETERS = {"ca_file": "ca_file", "cert_file": "cert_file", "key_file": "key_file"}


class TlsFileError(ConnectFailed):
    """A CA, certificate or key file is missing, unreadable or unusable; the message names it."""


def tls_context(
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> ssl.SSLContext:
    """A client context trusting ``ca_file`` (else the system's CAs), presenting ``cert_file``.

    A missing, unreadable or unusable file raises ConnectFailed naming the parameter.
    """
    return client_context(ca_file=ca_file, cert_file=cert_file, key_file=key_file)


def certificate_login(url: str) -> bool:
    """The URL asks for SASL EXTERNAL (``?auth=external``): the client certificate logs in."""
    return parse_qs(urlsplit(url).query).get("auth", [""])[-1].lower() == "external"


def client_context(
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    names: Mapping[str, str] | None = None,
) -> ssl.SSLContext:
    """A TLS 1.2+ client context that verifies the server's certificate and host name.

    Without ``ca_file`` the system's trusted CAs are used. ``key_file`` may be left out when the
    certificate file holds the key too. A bad file raises TlsFileError naming the setting
    (``names`` maps ``ca_file``/``cert_file``/``key_file`` to what the caller calls them).
    """
    label = {**PARAMETERS, **(names or {})}
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        _readable(ca_file, label["ca_file"])
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except ssl.SSLError as exc:
            raise TlsFileError(
                f"{label['ca_file']}: {ca_file} holds no usable CA certificate ({exc.reason})"
            ) from None
    if key_file is not None and cert_file is None:
        raise TlsFileError(f"{label['key_file']} is set but {label['cert_file']} is not")
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
            raise TlsFileError(
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
        raise TlsFileError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from None


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
    url_setting: str = "url",
    names: Mapping[str, str] | None = None,
) -> str | None:
    """What to fix, when TLS says a failed connection is a configuration error.

    A broker certificate our CA does not vouch for, a host name it was not issued for, or a
    broker alert about our client certificate cannot heal by retrying: the returned text names
    the setting to fix. Anything else (refused, reset, timed out) returns None.
    """
    label = {**PARAMETERS, **(names or {})}
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            if cause.verify_code == _HOSTNAME_MISMATCH:
                return (
                    f"{url_setting}: the broker's certificate is not issued for this host name "
                    f"({cause.verify_message})"
                )
            return (
                f"{label['ca_file']}: the broker's certificate is not signed by a trusted CA "
                f"({cause.verify_message})"
            )
        # An SSLError made by hand (not by OpenSSL) has no ``reason``: fall back to its text.
        reason = str(getattr(cause, "reason", None) or cause)
        if isinstance(cause, ssl.SSLError) and any(a in reason for a in _CLIENT_CERT_ALERTS):
            return f"{label['cert_file']}: the broker refused the client certificate ({reason})"
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
