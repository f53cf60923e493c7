"""Trusting a private CA and presenting a client certificate, for ``Client.connect(ssl_context=…)``.

    context = tls_context(ca_file="ca_certificate.pem",
                          cert_file="client-mag_certificate.pem", key_file="client-mag_key.pem")
    async with Client.connect("mag", "amqps://broker.example.org/liaison?auth=external",
                              ssl_context=context) as client: ...

Any ``ssl.SSLContext`` works (as with aio-pika); this one is built by the same function the hub
and the command line use: TLS 1.2 or later, the broker's certificate and host name verified.
"""

import ssl
from pathlib import Path

from liaison.common.errors import ConfigError
from liaison.common.tls import client_context
from liaison.sdk.errors import ConnectFailed

#: Errors name this function's parameters, not the services' LIAISON_TLS_* variables.
PARAMETERS = {"ca_file": "ca_file", "cert_file": "cert_file", "key_file": "key_file"}


def tls_context(
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> ssl.SSLContext:
    """A client context trusting ``ca_file`` (else the system's CAs), presenting ``cert_file``.

    A missing, unreadable or unusable file raises ConnectFailed naming the parameter.
    """
    try:
        return client_context(
            ca_file=ca_file, cert_file=cert_file, key_file=key_file, names=PARAMETERS
        )
    except ConfigError as exc:
        raise ConnectFailed(str(exc)) from None
