"""``python -m bench.hub_openssl_verify``: the hub verifying with OpenSSL, as before (bench only).

The baseline of ``bench/hub_signing.py``'s ``signed_openssl`` rounds: the same
``python -m liaison.hub``, except that the Ed25519 check inside ``liaison.sdk.signing.verify``
is ``cryptography``'s ``Ed25519PublicKey.verify`` (OpenSSL), which the SDK used until it moved
to libsodium. So one run measures the hub unsigned, signed with libsodium's verify and signed
with OpenSSL's, in alternating rounds.
"""

import runpy

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.exceptions import BadSignatureError

from liaison.sdk import signing

_KEYS: dict[bytes, Ed25519PublicKey] = {}


def _openssl_open(signed: bytes, public: bytes) -> bytes:
    """``crypto_sign_open``'s contract (signature, then the message) with OpenSSL's verify."""
    key = _KEYS.get(public)
    if key is None:
        key = _KEYS[public] = Ed25519PublicKey.from_public_bytes(public)
    try:
        key.verify(signed[:64], signed[64:])
    except InvalidSignature:
        raise BadSignatureError("signature was forged or corrupt") from None
    return signed[64:]


if __name__ == "__main__":
    # The one call verify() makes for the arithmetic.
    setattr(signing, "crypto_sign_open", _openssl_open)  # noqa: B010 - patching a module
    runpy.run_module("liaison.hub", run_name="__main__", alter_sys=True)
