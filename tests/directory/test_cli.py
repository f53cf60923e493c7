"""Command-line failures: one line on stderr, a non-zero exit, never a traceback."""

import json
from pathlib import Path

import pytest

from liaison.cli.__main__ import main
from tests.directory.conftest import directory_text

REPO = Path(__file__).resolve().parents[2]

BAD_DIRECTORIES = {
    "invalid TOML": ("version = 1\n[[organisations]\n", "not valid TOML"),
    "unknown field": (
        directory_text("t1", ["alpha"]).replace('kind = "ngo"', 'kind = "ngo"\ncolour = "blue"'),
        "unknown field `colour`",
    ),
    "duplicate organisation": (directory_text("t1", ["alpha", "alpha"]), "'alpha-t1' is twice"),
    "unknown group": (
        directory_text("t1", ["alpha"]).replace(
            "{ any = true }\nrecipients", '{ groups = ["nope"] }\nrecipients'
        ),
        "unknown group 'nope'",
    ),
}


@pytest.fixture(autouse=True)
def unreachable_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point the CLI at a closed port so no test here can touch a real broker by accident."""
    monkeypatch.setenv("LIAISON_MANAGEMENT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("LIAISON_CREDENTIALS_DIR", str(tmp_path / "credentials"))
    monkeypatch.delenv("LIAISON_DIRECTORY", raising=False)


def _one_line_failure(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("case", sorted(BAD_DIRECTORIES))
def test_bad_directory_is_refused_naming_the_problem(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken directory file stops provision with a message that names what is wrong."""
    text, problem = BAD_DIRECTORIES[case]
    path = tmp_path / "directory.toml"
    path.write_text(text)
    err = _one_line_failure(capsys, ["provision", "--directory", str(path)])
    assert problem in err
    assert err.startswith("liaison provision: ")


def test_unreachable_broker_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """With the management API down, provision and partner commands say so in one line."""
    err = _one_line_failure(
        capsys, ["provision", "--directory", str(REPO / "deploy/directory.toml")]
    )
    assert "cannot reach the management API at http://127.0.0.1:1" in err
    err = _one_line_failure(
        capsys,
        [
            "partner",
            "--directory",
            str(REPO / "deploy/directory.toml"),
            "rotate-credentials",
            "mag",
        ],
    )
    assert "LIAISON_MANAGEMENT_URL" in err


def test_list_without_broker_still_lists(capsys: pytest.CaptureFixture[str]) -> None:
    """partner list works offline, showing '-' for inbox depths."""
    assert main(["partner", "--directory", str(REPO / "deploy/directory.toml"), "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["ID", "KIND", "ACCOUNT", "ROLES", "INBOX"]
    assert "halo-trust" in out
    assert "inbox depths unavailable" in out


def test_bad_setting_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed LIAISON_* variable fails the command naming the variable."""
    monkeypatch.setenv("LIAISON_MANAGEMENT_URL", "not a url")
    assert "LIAISON_MANAGEMENT_URL" in _one_line_failure(capsys, ["provision"])


@pytest.mark.parametrize(
    "argv",
    [
        ["partner", "add", "unmas"],
        ["partner", "add", "x", "--name", "X", "--kind", "club"],
        ["partner"],
        ["provision", "--bogus"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Missing or invalid arguments are argparse usage errors (exit 2)."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_invalid_organisation_id_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """partner add with an id that breaks the id pattern is refused before touching anything."""
    path = tmp_path / "directory.toml"
    path.write_text(directory_text("t1", ["alpha"]))
    err = _one_line_failure(
        capsys,
        ["partner", "--directory", str(path), "add", "Bad_Id", "--name", "B", "--kind", "ngo"],
    )
    assert "invalid organisation" in err
    assert path.read_text() == directory_text("t1", ["alpha"])


def test_committed_definitions_are_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/rabbitmq/definitions.json is what --export-definitions makes, and holds no secret."""
    monkeypatch.delenv("LIAISON_VHOST", raising=False)
    out = tmp_path / "definitions.json"
    directory = str(REPO / "deploy/directory.toml")
    assert main(["provision", "--directory", directory, "--export-definitions", str(out)]) == 0
    committed = (REPO / "deploy/rabbitmq/definitions.json").read_text()
    assert out.read_text() == committed, "regenerate: see deploy/rabbitmq/README.md"
    document = json.loads(committed)
    assert {u["password_hash"] for u in document["users"]} == {""}
    assert {q["arguments"]["x-queue-type"] for q in document["queues"]} == {"quorum"}
