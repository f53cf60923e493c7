"""What a signature costs per message: signing in the SDK, verifying in the hub.

``python -m bench.signing [--messages N] [--rounds R]`` times, on the example EO spot report
(the bytes a partner publishes, about 0.8 KB):

- ``sign``: ``liaison.sdk.signing.sign`` as ``Client.publish_bytes`` calls it per message;
- ``verify``: the router's signature step alone (``verify`` against the directory's keys, the
  sender's organisation, the receipt time), as the hub runs it per message;
- ``verify_openssl``: what that step cost before it used libsodium (PyNaCl): the same checks with
  ``cryptography``'s ``Ed25519PublicKey.verify`` (OpenSSL) doing the arithmetic;
- ``decide``: the hub's whole pure decision (``Router.decide``) with and without the signature
  step, so the verify's share of the hub's per-message work shows;
- where the verify's time goes: ``crypto_sign_open_us`` (PyNaCl's call alone, as ``verify``
  makes it), ``verify_detached_us`` (libsodium's ``crypto_sign_verify_detached`` in the same
  library, through ``ctypes``: what leaving out PyNaCl's buffers and copies would save; bench
  only, PyNaCl does not export it), ``sha512_us`` (``hashlib``'s SHA-512 of the signing input:
  the hashing inside the check).

It prints µs per message (median of R rounds, process CPU time) as JSON. Measured on a shared,
busy machine the figures are indicative only.
"""

import argparse
import ctypes
import hashlib
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import nacl._sodium
from nacl.bindings import crypto_sign_open

from liaison.directory.index import compile_directory, load_directory
from liaison.directory.model import SignaturePolicy
from liaison.hub.router import Router
from liaison.schemas.examples import example
from liaison.sdk.signing import load_private_key, parse_signature, sign, verify

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "deploy" / "directory.toml"
KEY = ROOT / "deploy" / "demo-keys" / "mag.key"
KID = "mag-demo-2026"


def _message() -> bytes:
    envelope = msgspec.structs.replace(
        example("hazard.eo_spot_report"), sender="mag", recipients=["org:unmas"]
    )
    return msgspec.json.encode(envelope)


def _per_message_us(work: Callable[[], object], messages: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(messages):
            work()
        samples.append((time.process_time() - started) / messages * 1e6)
    return round(statistics.median(samples), 1)


def measure(messages: int, rounds: int) -> dict[str, Any]:
    """µs per message for sign, verify, and the hub's decision with and without signatures."""
    body = _message()
    private = load_private_key(KEY)
    header = sign(body, private, KID)
    index = load_directory(SAMPLE)
    keys = index.signing_keys
    at = datetime.now(UTC)
    unsigned_index = compile_directory(
        msgspec.structs.replace(
            index.directory,
            organisations=[
                msgspec.structs.replace(o, signatures=SignaturePolicy.WHEN_PRESENT)
                for o in index.directory.organisations
            ],
        )
    )
    protected, kid, signature = parse_signature(header)

    def verify_openssl() -> None:
        # verify() as it was with OpenSSL: the same lookups and checks, OpenSSL's arithmetic.
        parse_signature(header)
        key = keys[kid]
        if key.org != "mag" or not key.valid_at(at):
            raise AssertionError(kid)
        key.public_key.verify(signature, protected.encode("ascii") + b"." + body)

    signing_input = protected.encode("ascii") + b"." + body
    raw = keys[kid].raw
    # The symbol is exported by PyNaCl's own extension module (libsodium linked in statically).
    detached = ctypes.CDLL(nacl._sodium.__file__).crypto_sign_verify_detached
    detached.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p]
    if detached(signature, signing_input, len(signing_input), raw) != 0:
        raise AssertionError("libsodium's detached verify refused the example")

    signed_router = Router(index, max_message_bytes=1 << 18)
    unsigned_router = Router(unsigned_index, max_message_bytes=1 << 18)

    def decide(router: Router, signature: str | None) -> object:
        return router.decide(
            body,
            user_id="mag",
            routing_key="mag",
            content_type="application/json",
            signature=signature,
        )

    assert type(decide(signed_router, header)).__name__ == "Delivery"
    return {
        "body_bytes": len(body),
        "messages": messages,
        "rounds": rounds,
        "sign_us": _per_message_us(lambda: sign(body, private, KID), messages, rounds),
        "verify_us": _per_message_us(
            lambda: verify(body, header, keys, signer="mag", at=at), messages, rounds
        ),
        "verify_openssl_us": _per_message_us(verify_openssl, messages, rounds),
        "crypto_sign_open_us": _per_message_us(
            lambda: crypto_sign_open(signature + signing_input, raw), messages, rounds
        ),
        "verify_detached_us": _per_message_us(
            lambda: detached(signature, signing_input, len(signing_input), raw), messages, rounds
        ),
        "sha512_us": _per_message_us(
            lambda: hashlib.sha512(signature[:32] + raw + signing_input).digest(), messages, rounds
        ),
        "decide_signed_us": _per_message_us(
            lambda: decide(signed_router, header), messages, rounds
        ),
        "decide_unsigned_us": _per_message_us(
            lambda: decide(unsigned_router, None), messages, rounds
        ),
        "note": "process CPU time, median of rounds; measured on a shared, busy machine",
    }


def main() -> None:
    """Parse the arguments, measure, print JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.signing", description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.messages, args.rounds), indent=2))


if __name__ == "__main__":
    main()
