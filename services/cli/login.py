"""Who the command line connects as: a partner organisation, or the operator.

A partner (``--as ORG``) logs in with its broker account (from the directory, else the org id)
and the password ``liaison provision`` stored (``LIAISON_PASSWORD_<ACCOUNT>`` or a file under
``LIAISON_CREDENTIALS_DIR``) — unless ``--url`` names an account: then that account, with the
URL's password or else the one provisioned for it. The broker and vhost come from ``--url``,
else ``LIAISON_AMQP_URL``; a URL without a vhost gets ``LIAISON_VHOST`` (default ``liaison``).
Over ``amqps://``, ``--ca-file`` trusts a private CA and ``--cert-file``/``--key-file`` present a
client certificate (defaults ``LIAISON_TLS_CA_FILE``, ``LIAISON_TLS_CERT_FILE``,
``LIAISON_TLS_KEY_FILE``); with certificate login (``?auth=external`` in the URL) no password is
looked up: the certificate is the login.
"""

import argparse
import ssl
from pathlib import Path

from yarl import URL

from liaison.common.errors import ConfigError, DirectoryError
from liaison.common.tls import CA_FILE, CERT_FILE, KEY_FILE, TlsFiles, certificate_login
from liaison.common.urls import (
    AMQP_SCHEMES,
    parse_url,
    password_of,
    user_of,
    vhost_of,
    with_credentials,
    with_vhost,
)
from liaison.directory.credentials import load_credential
from liaison.directory.index import load_directory
from liaison.directory.settings import OperatorSettings, ProvisionSettings


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url``, shared by every command that talks AMQP."""
    parser.add_argument(
        "--url",
        help="broker URL, amqp:// or amqps://, optionally with credentials and vhost "
        "(default: LIAISON_AMQP_URL, vhost LIAISON_VHOST)",
    )
    tls = parser.add_argument_group("TLS (amqps:// only)")
    tls.add_argument("--ca-file", help=f"CA certificate to trust (default: {CA_FILE})")
    tls.add_argument("--cert-file", help=f"client certificate to present (default: {CERT_FILE})")
    tls.add_argument("--key-file", help=f"the client certificate's key (default: {KEY_FILE})")


def broker_tls(args: argparse.Namespace, url: str) -> ssl.SSLContext | None:
    """The TLS context for ``url`` from the options, else TLS file; None for amqp://."""
    from_env = TlsFiles.from_env()
    files = TlsFiles(
        ca_file=Path(args.ca_file) if args.ca_file else from_env.ca_file,
        cert_file=Path(args.cert_file) if args.cert_file else from_env.cert_file,
        key_file=Path(args.key_file) if args.key_file else from_env.key_file,
    )
    if URL(url).scheme != "amqps":
        if files.configured:
            raise ConfigError("--ca-file/--cert-file/--key-file need an amqps:// URL")
        return None
    if certificate_login(url) and files.cert_file is None:
        raise ConfigError(f"certificate login (?auth=external) needs --cert-file ({CERT_FILE})")
    return files.context(
        {
            "ca_file": f"--ca-file ({CA_FILE})",
            "cert_file": f"--cert-file ({CERT_FILE})",
            "key_file": f"--key-file ({KEY_FILE})",
        }
    )


def broker_url(url: str | None) -> str:
    """The URL to use, with the configured vhost filled in when it names none."""
    settings = ProvisionSettings.from_env()
    base = url or settings.amqp_url
    parse_url("--url", base, AMQP_SCHEMES)
    if vhost_of(base) is None:
        return with_vhost(base, settings.vhost)
    return base


def partner_login(org: str, url: str | None) -> tuple[str, str]:
    """(URL with credentials, broker account) for acting as ``org``."""
    resolved = broker_url(url)
    user = user_of(resolved)
    if url is not None and user:
        # --url names the account: its password, else the one provisioned for that account.
        if password_of(resolved):
            return resolved, user
        return with_credentials(resolved, user, load_credential(user)), user
    account = account_of(org)
    if certificate_login(resolved):
        return resolved, account
    return with_credentials(resolved, account, load_credential(account)), account


def account_of(org: str) -> str:
    """The broker account of ``org`` per the directory; an org not in it is an error."""
    path = ProvisionSettings.from_env().directory
    if not path.is_file():
        return org
    index = load_directory(path)
    organisation = index.organisations.get(org)
    if organisation is None:
        raise DirectoryError(f"unknown partner {org!r}: not in the directory {path}")
    return organisation.broker_account


def operator_url(url: str | None) -> str:
    """The operator's URL: ``--url``, else LIAISON_OPERATOR_URL, else the directory's operator
    account with its provisioned credential, else the admin on the vhost."""
    explicit = url or OperatorSettings.from_env().operator_url
    resolved = broker_url(explicit)
    if user_of(resolved):
        return resolved
    settings = ProvisionSettings.from_env()
    path = settings.directory
    if path.is_file():
        account = load_directory(path).directory.operator_account
        try:
            return with_credentials(resolved, account, load_credential(account))
        except ConfigError:
            pass  # not provisioned here: fall back to the admin, who can list but not replay
    return with_credentials(resolved, settings.admin_user, settings.admin_password.reveal())
