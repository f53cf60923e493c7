"""The chain heads' JWS: compact serialisation, payload attached, Ed25519 by the hub's key.

A head is signed with the hub's own key (``LIAISON_HUB_SIGNING_KEY``, services/common/hub_key.py),
the one partners already trust for the hub's reports (``liaison partner keys`` publishes it):
``{"alg":"Ed25519","kid":<hub kid>}`` protected header, the canonical head payload. Message
signatures (detached, ``b64: false``) are the SDK's business (liaison.sdk.signing). The Ed25519
arithmetic is the ``cryptography`` package's; this module only frames the JOSE envelope.
"""

import json
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from liaison.common.errors import LiaisonError
from liaison.common.hub_key import HubKey
from liaison.sdk.signing import b64url, b64url_decode, public_x

#: Algorithm names accepted for Ed25519 (RFC 9864's fully-specified name, and RFC 8037's).
ED25519_ALGS: Final = frozenset({"Ed25519", "EdDSA"})


class JwsError(LiaisonError):
    """A JWS is malformed, or its signature does not verify."""


@dataclass(frozen=True, slots=True)
class HeadSigningKey:
    """The private key that signs heads, with its key id."""

    kid: str
    private: Ed25519PrivateKey

    @classmethod
    def from_hub_key(cls, key: HubKey) -> "HeadSigningKey":
        """The hub's key, used for heads."""
        return cls(key.kid, key.private_key)

    def public_jwk(self) -> dict[str, str]:
        """The public half as an OKP JWK."""
        return {"kty": "OKP", "crv": "Ed25519", "x": public_x(self.private), "kid": self.kid}


def sign_compact(payload: bytes, key: HeadSigningKey) -> str:
    """A compact JWS of ``payload`` (attached, base64url-encoded)."""
    protected = b64url(json.dumps({"alg": "Ed25519", "kid": key.kid}).encode())
    encoded = b64url(payload)
    signature = key.private.sign(f"{protected}.{encoded}".encode("ascii"))
    return f"{protected}.{encoded}.{b64url(signature)}"


def protected_header(jws: str) -> dict[str, Any]:
    """The decoded protected header of a compact JWS."""
    parts = jws.split(".")
    if len(parts) != 3:
        raise JwsError("a compact JWS has three parts")
    try:
        header = json.loads(b64url_decode(parts[0]))
    except ValueError:
        raise JwsError("the protected header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise JwsError("the protected header is not an object")
    return header


def verify_compact(jws: str, keys: dict[str, Ed25519PublicKey]) -> tuple[str, bytes]:
    """The kid and payload of an attached compact JWS signed by one of ``keys``."""
    header = protected_header(jws)
    kid = header.get("kid")
    if header.get("alg") not in ED25519_ALGS:
        raise JwsError(f"alg {header.get('alg')!r} is not Ed25519")
    if not isinstance(kid, str) or kid not in keys:
        raise JwsError(f"signed by unknown key {kid!r}")
    protected, payload, signature = jws.split(".")
    try:
        keys[kid].verify(b64url_decode(signature), f"{protected}.{payload}".encode("ascii"))
        return kid, b64url_decode(payload)
    except (InvalidSignature, ValueError):
        raise JwsError(f"signature by {kid} does not verify") from None
