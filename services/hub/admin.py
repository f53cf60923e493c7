"""Who may call the hub's admin endpoints (``/admin/*``).

Health, readiness and metrics are open to whoever can reach the port; an admin call changes
what the hub does, so it needs ``Authorization: Bearer <LIAISON_ADMIN_TOKEN>`` when a token is
set, and comes from the hub's own machine (a loopback address) when none is.
"""

import hmac
import ipaddress
from collections.abc import Mapping
from pathlib import Path

from liaison.common.errors import ConfigError


class AdminRefusal(Exception):
    """An admin call refused: the HTTP status and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def check_admin_access(remote: str | None, authorization: str | None, token: str | None) -> None:
    """Raise AdminRefusal unless a call from ``remote`` with this header may administer."""
    if token is None:
        if not _is_loopback(remote):
            raise AdminRefusal(
                403, "admin calls from another host need LIAISON_ADMIN_TOKEN set on the hub"
            )
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise AdminRefusal(401, "admin calls need 'Authorization: Bearer <admin token>'")


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def admin_token_from_env(env: Mapping[str, str]) -> str | None:
    """``LIAISON_ADMIN_TOKEN``, or the first line of the file ``LIAISON_ADMIN_TOKEN_FILE`` names."""
    token = env.get("LIAISON_ADMIN_TOKEN") or None
    path = env.get("LIAISON_ADMIN_TOKEN_FILE")
    if path:
        try:
            token = Path(path).read_text().strip() or None
        except OSError as exc:
            raise ConfigError(f"LIAISON_ADMIN_TOKEN_FILE: cannot read {path}: {exc}") from None
    if token is not None and len(token) < 16:
        raise ConfigError("LIAISON_ADMIN_TOKEN (or its file) must be at least 16 characters")
    return token
