"""Signing keys in the directory: validated on load, registered and rotated by `liaison
partner`, published with the hub's by `liaison partner keys`."""

import json
import stat
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from liaison.common.errors import DirectoryError
from liaison.directory.index import load_directory
from liaison.sdk.signing import generate_private_key, load_private_key, public_x
from tests.directory.test_partner_cli import directory, liaison  # noqa: F401  (fixture, by name)

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "directory.toml"
X = public_x(generate_private_key())


def _sample_with(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "directory.toml"
    text = SAMPLE.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def test_sample_directory_registers_a_key_for_everyone() -> None:
    """Every sample organisation has a key and must sign: `make run` signs everything."""
    index = load_directory(SAMPLE)
    assert index.signatures_required == frozenset(index.organisations)
    assert {k.org for k in index.signing_keys.values()} == set(index.organisations)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('kid = "mag-demo-2026"', 'kid = "unmas-demo-2026"', "registered twice"),
        (
            "not_before = 2026-01-01T00:00:00Z",
            "not_before = 2031-01-01T00:00:00Z",
            "not_before must be before not_after",
        ),
        ('public_key = "', 'public_key = "A', "public_key"),
        ("not_before = 2026-01-01T00:00:00Z", "not_before = 2026-01-01T00:00:00", "timezone"),
        ('kid = "mag-demo-2026"', 'kid = "liaison-hub-mag"', "are the hub's"),
    ],
)
def test_bad_keys_are_refused_on_load(tmp_path: Path, old: str, new: str, message: str) -> None:
    """A kid used twice (across organisations), an empty validity, a key that is not 32 bytes
    base64url, a time without its zone, a kid in the hub's namespace: the directory does not
    load."""
    with pytest.raises(DirectoryError, match=message):
        load_directory(_sample_with(tmp_path, old, new))


async def test_add_generates_or_registers_and_rotation_overlaps(
    directory: Path,  # noqa: F811
    tag: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """add --generate-signing-key writes the private key once (0600) and registers its public
    half with signatures required; add --signing-public-key registers the partner's own key;
    rotate-signing-key adds a key and ends the old one after the overlap; keys publishes all,
    the hub's included."""
    generated, given = f"kilo-{tag}", f"lima-{tag}"
    keys_dir = tmp_path / "keys"
    code, out, err = await liaison(
        capsys, "partner", "add", generated, "--name", "Kilo", "--kind", "ngo",
        "--generate-signing-key", str(keys_dir), "--kid", f"{generated}-1",
    )  # fmt: skip
    assert code == 0, err
    private_file = keys_dir / f"{generated}-1.key"
    assert f"private key: {private_file}" in out
    assert stat.S_IMODE(private_file.stat().st_mode) == 0o600
    index = load_directory(directory)
    registered = index.signing_keys[f"{generated}-1"]
    assert registered.org == generated
    assert registered.public_key == load_private_key(private_file).public_key()
    assert generated in index.signatures_required
    assert "BEGIN PRIVATE KEY" not in directory.read_text()

    code, out, err = await liaison(
        capsys, "partner", "add", given, "--name", "Lima", "--kind", "ngo",
        "--signing-public-key", X, "--kid", f"{given}-1", "--signatures", "when_present",
    )  # fmt: skip
    assert code == 0, err
    assert "private key:" not in out
    index = load_directory(directory)
    assert index.signing_keys[f"{given}-1"].org == given
    assert given not in index.signatures_required

    before = datetime.now(UTC)
    code, out, err = await liaison(
        capsys, "partner", "rotate-signing-key", generated,
        "--generate-signing-key", str(keys_dir), "--kid", f"{generated}-2", "--overlap", "2h",
    )  # fmt: skip
    assert code == 0, err
    assert f"key '{generated}-1' now ends at" in out
    index = load_directory(directory)
    old, new = index.signing_keys[f"{generated}-1"], index.signing_keys[f"{generated}-2"]
    assert before + timedelta(hours=2) <= old.not_after <= datetime.now(UTC) + timedelta(hours=2)
    assert new.not_after > old.not_after
    assert new.org == generated
    raw = tomllib.loads(directory.read_text())
    assert sum(o["id"] == generated for o in raw["organisations"]) == 1

    assert (await liaison(capsys, "provision"))[0] == 0  # creates the hub's key
    out_file = tmp_path / "signing-keys.json"
    code, _, err = await liaison(capsys, "partner", "keys", "--out", str(out_file))
    assert code == 0, err
    published = {k["kid"]: k for k in json.loads(out_file.read_text())["keys"]}
    assert {f"{generated}-1", f"{generated}-2", f"{given}-1"} <= set(published)
    assert published[f"{given}-1"]["x"] == X
    assert any(k["org"] == "liaison" for k in published.values())
