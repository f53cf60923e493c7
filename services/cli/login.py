"""Who the command line connects as: a partner organisation, or the operator.

A partner (``--as ORG``) logs in with its broker account (from the directory, else the org id)
and the password ``liaison provision`` stored (``LIAISON_PASSWORD_<ACCOUNT>`` or a file under
``LIAISON_CREDENTIALS_DIR``) — unless ``--url`` already carries credentials. The broker and
vhost come from ``--url``, else ``LIAISON_AMQP_URL``; a URL without a vhost gets
``LIAISON_VHOST`` (default ``liaison``).
"""

import argparse

from liaison.common.errors import ConfigError, DirectoryError
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
    if url is not None and user and password_of(resolved):
        return resolved, user
    account = account_of(org)
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
