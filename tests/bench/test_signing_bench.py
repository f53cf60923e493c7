"""bench/signing.py runs and reports every figure (no timing is asserted: the machine is shared)."""

from bench.signing import measure


def test_signing_bench_reports_each_cost() -> None:
    """sign, verify (libsodium, and OpenSSL as before) and the hub's decision with and without
    the signature step, in µs."""
    figures = measure(messages=20, rounds=1)
    names = (
        "sign_us",
        "verify_us",
        "verify_openssl_us",
        "crypto_sign_open_us",
        "verify_detached_us",
        "sha512_us",
        "decide_signed_us",
        "decide_unsigned_us",
    )
    for name in names:
        assert figures[name] > 0, figures
    assert figures["body_bytes"] > 500
