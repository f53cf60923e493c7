"""Partners' signing keys in the directory: register, rotate, publish.

A partner's public key is registered in its ``[[organisations]]`` table (``signing_keys``); its
private key never reaches Liaison, unless the operator has Liaison generate the pair once
(``--generate-signing-key``): the private key is then written to a 0600 file for the partner
and not kept in the directory. Rotation adds the new key and cuts the old one's ``not_after``
to the end of an overlap, so messages signed just before the switch still verify; after the
overlap the old key is refused as expired (211).

``published_keys`` is the ``signing-keys.json`` handed to partners with the contract: every
organisation's public keys and the hub's, which the SDK verifies deliveries and hub reports
with.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from liaison.common.errors import DirectoryError
from liaison.common.hub_key import HubKey
from liaison.directory.index import DirectoryIndex
from liaison.directory.model import SigningKey
from liaison.sdk.errors import InvalidArgument
from liaison.sdk.signing import (
    generate_private_key,
    keys_document,
    public_key_from_x,
    public_x,
    write_private_key,
)

#: How long a newly registered key is valid unless told otherwise.
DEFAULT_KEY_DAYS: Final = 365
#: How long a rotated-out key stays valid after the new one is registered.
DEFAULT_OVERLAP: Final = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just registered; ``private_key_file`` when Liaison generated the pair."""

    org: str
    key: SigningKey
    private_key_file: Path | None

    def announcement(self) -> list[str]:
        """What the operator tells the partner."""
        lines = [
            f"Signing key for {self.key.kid!r} registered for {self.org} "
            f"(valid {self.key.not_before.isoformat()} .. {self.key.not_after.isoformat()})."
        ]
        if self.private_key_file is not None:
            lines += [
                f"  private key: {self.private_key_file} (mode 0600; generated once, not kept by "
                "Liaison: hand it to the partner and delete this copy)",
                f'  SDK: Client.connect(..., signing_key="{self.private_key_file.name}", '
                f'signing_kid="{self.key.kid}")',
            ]
        return lines


def new_signing_key(
    org: str,
    *,
    public_key: str | None,
    generate_into: Path | None,
    kid: str | None = None,
    now: datetime | None = None,
    days: int = DEFAULT_KEY_DAYS,
) -> NewKey:
    """A key for ``org`` from a partner's public key (JWK ``x``), or a pair generated once."""
    if (public_key is None) == (generate_into is None):
        raise DirectoryError("give the partner's public key, or ask to generate a pair (not both)")
    start = (now or datetime.now(UTC)).replace(microsecond=0)
    kid = kid or f"{org}-{start:%Y%m%dT%H%M%S}"
    private_key_file: Path | None = None
    if public_key is not None:
        try:
            public_key_from_x(public_key)
        except ValueError as exc:
            raise DirectoryError(f"the public key is not a JWK x value: {exc}") from None
        x = public_key
    else:
        assert generate_into is not None
        private = generate_private_key()
        private_key_file = generate_into / f"{kid}.key"
        try:
            write_private_key(private_key_file, private)
        except FileExistsError:
            raise DirectoryError(f"{private_key_file} exists; it is never overwritten") from None
        except OSError as exc:
            raise DirectoryError(f"cannot write {private_key_file}: {exc.strerror}") from None
        x = public_x(private)
    key = SigningKey(
        kid=kid, public_key=x, not_before=start, not_after=start + timedelta(days=days)
    )
    return NewKey(org, key, private_key_file)


def signing_key_table(key: SigningKey) -> dict[str, Any]:
    """How a key is written into an ``[[organisations]]`` table (TOML datetimes)."""
    return {
        "kid": key.kid,
        "public_key": key.public_key,
        "not_before": key.not_before,
        "not_after": key.not_after,
    }


def published_keys(index: DirectoryIndex, hub_key: HubKey | None) -> bytes:
    """``signing-keys.json``: every organisation's public keys, and the hub's."""
    keys = list(index.signing_keys.values())
    if hub_key is not None:
        keys.append(hub_key.trusted())
    try:
        return keys_document(keys)
    except InvalidArgument as exc:  # pragma: no cover - keys were validated on load
        raise DirectoryError(str(exc)) from None
