"""Signatures over the exact bytes published: a detached, unencoded Ed25519 JWS in a header.

The ``x-liaison-signature`` header holds ``BASE64URL(protected) + ".." + BASE64URL(signature)``
(RFC 7515 Appendix F, detached payload) with the protected header
``{"alg":"Ed25519","kid":"<key id>","b64":false,"crit":["b64"]}`` (RFC 7797: the payload is
not base64url-encoded), so the signing input is ``BASE64URL(protected) || "." || body``. Any JOSE
library that knows RFC 7797 checks it (``jose`` in Node: ``flattenedVerify`` with the payload).

The Ed25519 arithmetic is a library's, never this module's: signing and the key files are
``cryptography``'s (OpenSSL); verifying is libsodium's through PyNaCl (``crypto_sign_open``),
about 54 µs a message here against OpenSSL's 105 µs (``bench/signing.py``), the hub's largest
per-message cost once every message is signed. Both libraries are PyCA's. This module only
frames the JWS, which is base64url and JSON. ``joserfc`` would do the framing too but adds a
dependency to the partner wheel for twenty lines. Public keys travel as OKP JWKs in a JWK set
(``signing-keys.json``), each with the owner's ``org`` and the key's ``not_before`` and
``not_after`` (RFC 3339) as extra members.
"""

import base64
import binascii
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from liaison.sdk.errors import (
    InvalidArgument,
    SignatureError,
    SignatureKeyExpired,
    SignatureMalformed,
    SignatureMismatch,
    SignatureMissing,
    SignatureUnknownKey,
)

__all__ = [
    "ALGORITHM",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "SignatureCheck",
    "Signed",
    "TrustedKey",
    "check_delivered",
    "generate_private_key",
    "keys_document",
    "load_private_key",
    "load_trusted_keys",
    "parse_signature",
    "public_x",
    "sign",
    "verify",
    "write_private_key",
]

#: RFC 9864's fully specified name; "EdDSA" (RFC 8037) names the same signature for Ed25519.
ALGORITHM: Final = "Ed25519"
_ACCEPTED_ALGORITHMS: Final = frozenset({"Ed25519", "EdDSA"})
_MAX_HEADER: Final = 1024
#: Protected headers already decoded (one per key in use): kid by encoded header.
_PROTECTED_CACHE: dict[str, str] = {}
_PROTECTED_CACHE_MAX: Final = 4096


class _Protected(msgspec.Struct, frozen=True):
    alg: str
    kid: str
    b64: bool = True
    crit: list[str] = []


_decode_protected = msgspec.json.Decoder(_Protected).decode


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A registered public key: whose it is, its id, and when it may sign."""

    kid: str
    org: str
    public_key: Ed25519PublicKey
    not_before: datetime
    not_after: datetime
    #: The raw 32 bytes libsodium verifies with, taken once rather than per message.
    raw: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        object.__setattr__(self, "raw", raw)

    def valid_at(self, when: datetime) -> bool:
        """Whether the key may sign at ``when`` (not_before inclusive, not_after exclusive)."""
        return self.not_before <= when < self.not_after

    @classmethod
    def from_x(
        cls, kid: str, org: str, x: str, not_before: datetime, not_after: datetime
    ) -> "TrustedKey":
        """Build from the JWK ``x`` value (base64url of the 32 raw bytes)."""
        return cls(kid, org, public_key_from_x(x), not_before, not_after)


@dataclass(frozen=True, slots=True)
class Signed:
    """Who signed a message, once ``verify`` accepted it."""

    org: str
    kid: str


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of ``b64url``; raises ValueError on anything that is not base64url."""
    if not text.isascii() or "=" in text or "+" in text or "/" in text:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def public_key_from_x(x: str) -> Ed25519PublicKey:
    """The Ed25519 public key from a JWK ``x`` value; raises ValueError unless 32 bytes."""
    raw = b64url_decode(x)
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this one {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_x(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The JWK ``x`` value (base64url of the raw 32 bytes) of a key's public half."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return b64url(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def sign(body: bytes, private_key: Ed25519PrivateKey, kid: str) -> str:
    """The ``x-liaison-signature`` value for ``body`` signed with ``private_key`` as ``kid``."""
    protected = b64url(
        msgspec.json.encode({"alg": ALGORITHM, "kid": kid, "b64": False, "crit": ["b64"]})
    )
    signature = private_key.sign(protected.encode("ascii") + b"." + body)
    return f"{protected}..{b64url(signature)}"


def parse_signature(header: object) -> tuple[str, str, bytes]:
    """Split a header value into (encoded protected header, kid, signature bytes).

    Raises ``SignatureMissing`` for no value, ``SignatureMalformed`` for anything that is not a
    detached, unencoded Ed25519 JWS.
    """
    if header is None or header == "" or header == b"":
        raise SignatureMissing("the message carries no x-liaison-signature header")
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            raise SignatureMalformed("the signature header is not ASCII") from None
    if not isinstance(header, str):
        raise SignatureMalformed(f"the signature header is a {type(header).__name__}, not text")
    if len(header) > _MAX_HEADER:
        raise SignatureMalformed(f"the signature header is longer than {_MAX_HEADER} characters")
    protected, sep, rest = header.partition("..")
    if not sep or "." in rest or not protected or not rest:
        raise SignatureMalformed(
            "expected a detached JWS: BASE64URL(protected)..BASE64URL(signature)"
        )
    kid = _PROTECTED_CACHE.get(protected)
    if kid is None:
        kid = _check_protected(protected)
        if len(_PROTECTED_CACHE) >= _PROTECTED_CACHE_MAX:
            _PROTECTED_CACHE.clear()
        _PROTECTED_CACHE[protected] = kid
    try:
        signature = b64url_decode(rest)
    except ValueError:
        raise SignatureMalformed("the signature part is not base64url") from None
    if len(signature) != 64:
        raise SignatureMalformed(f"an Ed25519 signature is 64 bytes, this one {len(signature)}")
    return protected, kid, signature


def _check_protected(protected: str) -> str:
    try:
        header = _decode_protected(b64url_decode(protected))
    except (ValueError, msgspec.DecodeError):
        raise SignatureMalformed(
            "the protected header is not base64url JSON with alg and kid"
        ) from None
    if header.alg not in _ACCEPTED_ALGORITHMS:
        raise SignatureMalformed(f"alg is {header.alg[:32]!r}; sign with Ed25519")
    if header.b64 is not False or header.crit != ["b64"]:
        raise SignatureMalformed('the protected header needs "b64":false and "crit":["b64"]')
    if not header.kid or len(header.kid) > 200:
        raise SignatureMalformed("the protected header's kid is empty or too long")
    return header.kid


def verify(
    body: bytes,
    header: object,
    keys: Mapping[str, TrustedKey],
    *,
    signer: str | None = None,
    at: datetime | None = None,
) -> TrustedKey:
    """The key that signed ``body``, or the ``SignatureError`` that says why none did.

    ``keys`` maps kid to key. With ``signer``, only that organisation's keys count (another
    organisation's key is an unknown key for it). ``at`` is when the message was received (now
    when omitted): the key must be valid then.
    """
    protected, kid, signature = parse_signature(header)
    key = keys.get(kid)
    if key is None or (signer is not None and key.org != signer):
        whose = f" of {signer}" if signer is not None else ""
        raise SignatureUnknownKey(f"kid {kid[:64]!r} is not a registered signing key{whose}")
    when = at if at is not None else datetime.now(UTC)
    if not key.valid_at(when):
        raise SignatureKeyExpired(
            f"key {kid!r} is valid from {key.not_before.isoformat()} until "
            f"{key.not_after.isoformat()}, not at {when.isoformat(timespec='seconds')}"
        )
    try:
        # libsodium's combined form: the signature followed by the signed bytes.
        crypto_sign_open(signature + protected.encode("ascii") + b"." + body, key.raw)
    except BadSignatureError:
        raise SignatureMismatch(f"the body is not what key {kid!r} signed") from None
    return key


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """What a recipient learns of a delivered message's signature."""

    #: The organisation whose registered key signed it (None: unsigned, or not verified).
    signed_by: str | None
    #: The kid the signature names (claimed; verified only when ``verified``).
    kid: str | None
    verified: bool
    #: Why it is not verified (no signature, no trusted keys, or the SignatureError's text).
    problem: str | None = None


def check_delivered(
    body: bytes,
    header: object,
    sender: str,
    keys: Mapping[str, TrustedKey] | None,
    *,
    at: datetime | None = None,
) -> SignatureCheck:
    """Verify a delivered message against the trusted keys; never raises."""
    try:
        _, kid, _ = parse_signature(header)
    except SignatureError as exc:
        return SignatureCheck(None, None, False, str(exc))
    if keys is None:
        return SignatureCheck(None, kid, False, "no trusted keys given (trusted_keys=)")
    try:
        key = verify(body, header, keys, signer=sender, at=at)
    except SignatureError as exc:
        return SignatureCheck(None, kid, False, str(exc))
    return SignatureCheck(key.org, key.kid, True)


# --- key files ------------------------------------------------------------------------------


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def write_private_key(path: Path, key: Ed25519PrivateKey) -> Path:
    """Write ``key`` as unencrypted PKCS#8 PEM, readable by its owner only (0600)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return path


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read an Ed25519 private key from a PKCS#8 PEM file (what ``liaison partner`` writes)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the signing key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise InvalidArgument(f"{path} is not an unencrypted PKCS#8 PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidArgument(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


class _Jwk(msgspec.Struct, frozen=True):
    kty: str
    crv: str
    x: str
    kid: str
    org: str
    not_before: Annotated[datetime, msgspec.Meta(tz=True)]
    not_after: Annotated[datetime, msgspec.Meta(tz=True)]


class _JwkSet(msgspec.Struct, frozen=True):
    keys: list[_Jwk]


def keys_document(keys: Iterable[TrustedKey]) -> bytes:
    """A JWK set of public keys (``signing-keys.json``), as the partner bundle publishes it."""
    doc = {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": public_x(k.public_key),
                "kid": k.kid,
                "use": "sig",
                "alg": ALGORITHM,
                "org": k.org,
                "not_before": k.not_before.isoformat(),
                "not_after": k.not_after.isoformat(),
            }
            for k in keys
        ]
    }
    return msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n"


def load_trusted_keys(source: str | os.PathLike[str] | bytes) -> dict[str, TrustedKey]:
    """Public keys by kid from a ``signing-keys.json`` JWK set (a path, or its bytes)."""
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the signing keys {source!r}: {exc.strerror}") from None
    try:
        jwks = msgspec.json.decode(data, type=_JwkSet)
        keys = {}
        for jwk in jwks.keys:
            if (jwk.kty, jwk.crv) != ("OKP", "Ed25519"):
                raise ValueError(f"{jwk.kid}: not an OKP Ed25519 key")
            keys[jwk.kid] = TrustedKey.from_x(
                jwk.kid, jwk.org, jwk.x, jwk.not_before, jwk.not_after
            )
    except (msgspec.DecodeError, ValueError) as exc:
        raise InvalidArgument(f"the signing keys are not a valid JWK set: {exc}") from None
    return keys
