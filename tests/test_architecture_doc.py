"""docs/architecture.md names only modules that exist, so the map cannot drift from the code."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()


def test_every_module_the_map_names_exists() -> None:
    """Each `*.py` file the architecture map names is in services/, schemas/ or tests/."""
    named = set(re.findall(r"([\w/]+\.py)", DOC))
    assert named, "the map names no module"
    homes = [ROOT, ROOT / "services", ROOT / "services" / "hub", ROOT / "services" / "ledger"]
    missing = sorted(n for n in named if not any((home / n).is_file() for home in homes))
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_service_folder_is_on_the_map_and_linked() -> None:
    """Every services/<name> is on the map and importable as liaison.<name>."""
    for folder in sorted(p for p in (ROOT / "services").iterdir() if (p / "__init__.py").is_file()):
        assert f"  {folder.name}/" in DOC, f"services/{folder.name} is not on the map"
        link = ROOT / "liaison" / folder.name
        assert link.is_symlink(), f"liaison/{folder.name} is not a link"
        assert link.resolve() == folder.resolve(), f"liaison/{folder.name} points elsewhere"
