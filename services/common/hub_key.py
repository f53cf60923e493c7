"""The hub's own signing key: what it originates (error and status reports) is signed with it.

The private key is a PKCS#8 PEM file (``LIAISON_HUB_SIGNING_KEY``, mode 0600); beside it,
``<file>.json`` names its kid and validity. ``liaison provision`` and ``make run`` create both
when absent; the public half is published to partners in ``signing-keys.json`` with the
directory's keys (``liaison partner keys``), and the SDK verifies hub reports with it.
"""

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from liaison.common.errors import ConfigError
from liaison.schemas.wire import HUB_SENDER
from liaison.sdk.errors import InvalidArgument
from liaison.sdk.signing import (
    TrustedKey,
    generate_private_key,
    load_private_key,
    sign,
    write_private_key,
)

#: Where ``make run`` and ``liaison provision`` keep the hub's key unless told otherwise.
DEFAULT_HUB_KEY: Final = Path("var/hub-signing.key")
#: How long a generated hub key is valid.
HUB_KEY_DAYS: Final = 730


@dataclass(frozen=True, slots=True)
class HubKey:
    """The hub's private key with its kid and validity."""

    private_key: Ed25519PrivateKey
    kid: str
    not_before: datetime
    not_after: datetime

    def sign(self, body: bytes) -> str:
        """The ``x-liaison-signature`` value for a message the hub originates."""
        return sign(body, self.private_key, self.kid)

    def trusted(self) -> TrustedKey:
        """The public half, as partners trust it (owner ``liaison``)."""
        return TrustedKey(
            self.kid, HUB_SENDER, self.private_key.public_key(), self.not_before, self.not_after
        )


def _metadata_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def load_hub_key(path: Path) -> HubKey:
    """Read the hub's key and its ``.json`` companion; ConfigError names what is wrong."""
    try:
        private_key = load_private_key(path)
    except InvalidArgument as exc:
        raise ConfigError(f"LIAISON_HUB_SIGNING_KEY: {exc}") from None
    meta_path = _metadata_path(path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return HubKey(
            private_key,
            str(meta["kid"]),
            datetime.fromisoformat(meta["not_before"]).astimezone(UTC),
            datetime.fromisoformat(meta["not_after"]).astimezone(UTC),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"LIAISON_HUB_SIGNING_KEY: {meta_path} must name the key's kid, not_before and "
            f"not_after ({exc})"
        ) from None


def ensure_hub_key(path: Path, *, now: datetime | None = None) -> tuple[HubKey, bool]:
    """The hub's key at ``path``, generated (with its companion) if absent; (key, created)."""
    if path.exists():
        return load_hub_key(path), False
    start = (now or datetime.now(UTC)).replace(microsecond=0)
    key = HubKey(
        generate_private_key(),
        f"liaison-hub-{start:%Y%m%dT%H%M%S}",
        start - timedelta(minutes=5),  # tolerate a partner's clock a little behind
        start + timedelta(days=HUB_KEY_DAYS),
    )
    write_private_key(path, key.private_key)
    meta = {
        "kid": key.kid,
        "not_before": key.not_before.isoformat(),
        "not_after": key.not_after.isoformat(),
    }
    temporary = _metadata_path(path).with_suffix(".new")
    temporary.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, _metadata_path(path))
    return key, True
