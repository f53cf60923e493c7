"""The SDK's signatures: the detached JWS it makes, each way verify refuses, the key files."""

import base64
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from liaison.sdk import (
    InvalidArgument,
    SignatureKeyExpired,
    SignatureMalformed,
    SignatureMismatch,
    SignatureMissing,
    SignatureUnknownKey,
)
from liaison.sdk.signing import (
    TrustedKey,
    check_delivered,
    generate_private_key,
    keys_document,
    load_private_key,
    load_trusted_keys,
    sign,
    verify,
    write_private_key,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BODY = b'{"schema_version":"1.0","sender":"mag"}'


@pytest.fixture(scope="module")
def mag() -> tuple[object, TrustedKey]:
    """mag's private key and its registered public key, valid a day either side of NOW."""
    private = generate_private_key()
    public = TrustedKey(
        "mag-1", "mag", private.public_key(), NOW - timedelta(days=1), NOW + timedelta(days=1)
    )
    return private, public


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_header_is_a_detached_unencoded_ed25519_jws(mag: tuple[object, TrustedKey]) -> None:
    """protected..signature; protected names Ed25519, the kid, b64 false, crit b64."""
    private, _ = mag
    header = sign(BODY, private, "mag-1")  # type: ignore[arg-type]
    protected, empty, signature = header.split(".")
    assert empty == ""
    decoded = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
    assert decoded == {"alg": "Ed25519", "kid": "mag-1", "b64": False, "crit": ["b64"]}
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64


def test_verify_names_the_key_and_refuses_each_fault(mag: tuple[object, TrustedKey]) -> None:
    """The signer's key comes back; missing, malformed, unknown, expired, altered each raise
    their own error."""
    private, public = mag
    keys = {"mag-1": public}
    header = sign(BODY, private, "mag-1")  # type: ignore[arg-type]
    assert verify(BODY, header, keys, signer="mag", at=NOW) is public
    hs256 = _b64(b'{"alg":"HS256","kid":"mag-1","b64":false,"crit":["b64"]}') + "..AA"
    encoded = _b64(b'{"alg":"Ed25519","kid":"mag-1"}') + ".." + header.split("..")[1]
    cases: list[tuple[bytes, object, dict[str, object], type[Exception]]] = [
        (BODY, None, {}, SignatureMissing),
        (BODY, "", {}, SignatureMissing),
        (BODY, "not-a-jws", {}, SignatureMalformed),
        (BODY, header.replace("..", ".e30."), {}, SignatureMalformed),
        (BODY, hs256, {}, SignatureMalformed),
        (BODY, encoded, {}, SignatureMalformed),  # a base64url payload needs no crit: not ours
        (BODY, header[:-4], {}, SignatureMalformed),
        (BODY, header, {"signer": "unmas"}, SignatureUnknownKey),
        (BODY, sign(BODY, private, "other"), {}, SignatureUnknownKey),  # type: ignore[arg-type]
        (BODY, header, {"at": NOW + timedelta(days=2)}, SignatureKeyExpired),
        (BODY, header, {"at": NOW - timedelta(days=2)}, SignatureKeyExpired),
        (BODY + b" ", header, {}, SignatureMismatch),
        (BODY, sign(BODY, generate_private_key(), "mag-1"), {}, SignatureMismatch),
    ]  # fmt: skip
    for body, value, options, error in cases:
        kwargs = {"signer": "mag", "at": NOW, **options}
        with pytest.raises(error):
            verify(body, value, keys, **kwargs)  # type: ignore[arg-type]


def test_eddsa_is_accepted_as_the_same_algorithm(mag: tuple[object, TrustedKey]) -> None:
    """A JOSE library that only knows "EdDSA" (RFC 8037) makes the same signature: accepted."""
    private, public = mag
    protected = _b64(b'{"alg":"EdDSA","kid":"mag-1","b64":false,"crit":["b64"]}')
    signature = private.sign(protected.encode() + b"." + BODY)  # type: ignore[attr-defined]
    header = f"{protected}..{_b64(signature)}"
    assert verify(BODY, header, {"mag-1": public}, signer="mag", at=NOW) is public


def test_check_delivered_never_raises(mag: tuple[object, TrustedKey]) -> None:
    """The inbox's view: verified with the signer, or unverified with the reason."""
    private, public = mag
    header = sign(BODY, private, "mag-1")  # type: ignore[arg-type]
    good = check_delivered(BODY, header, "mag", {"mag-1": public}, at=NOW)
    assert (good.verified, good.signed_by, good.kid) == (True, "mag", "mag-1")
    altered = check_delivered(BODY + b"x", header, "mag", {"mag-1": public}, at=NOW)
    assert (altered.verified, altered.signed_by, altered.kid) == (False, None, "mag-1")
    assert "not what key" in (altered.problem or "")
    untrusted = check_delivered(BODY, header, "mag", None, at=NOW)
    assert (untrusted.verified, untrusted.kid) == (False, "mag-1")
    assert not check_delivered(BODY, None, "mag", {"mag-1": public}).verified


def test_key_files_round_trip(tmp_path: Path, mag: tuple[object, TrustedKey]) -> None:
    """A private key is written 0600 and never over an existing file; a JWK set reads back."""
    private = generate_private_key()
    path = write_private_key(tmp_path / "mag.key", private)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_private_key(path, private)
    assert load_private_key(path).public_key() == private.public_key()
    (tmp_path / "bad.key").write_text("nope")
    with pytest.raises(InvalidArgument):
        load_private_key(tmp_path / "bad.key")
    _, public = mag
    keys = load_trusted_keys(keys_document([public]))
    assert keys["mag-1"].org == "mag"
    assert keys["mag-1"].public_key == public.public_key
    assert (keys["mag-1"].not_before, keys["mag-1"].not_after) == (
        public.not_before,
        public.not_after,
    )
    with pytest.raises(InvalidArgument):
        load_trusted_keys(b'{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"k",'
                          b'"org":"mag","not_before":"2026-01-01T00:00:00Z",'
                          b'"not_after":"2027-01-01T00:00:00Z"}]}')  # fmt: skip
