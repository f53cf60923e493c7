"""Write the generated contract under `schemas/generated/` (`make schemas` runs this).

The only module in `schemas/` that does I/O. Output is deterministic (sorted keys, fixed
example timestamps, trailing newline), so a test can compare it byte for byte.

    python -m liaison.schemas.generate [--out DIR]
"""

import argparse
import json
import shutil
from pathlib import Path
from typing import Any, Final

from liaison.schemas import codes
from liaison.schemas.asyncapi import asyncapi_document
from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.envelope import ENCODER
from liaison.schemas.examples import EXAMPLES
from liaison.schemas.json_schemas import body_schema, envelope_schema

__all__ = ["GENERATED_DIR", "artefacts", "main", "write"]

GENERATED_DIR: Final = Path(__file__).parent / "generated"


def _json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def artefacts() -> dict[str, str]:
    """Relative path -> file content, for every generated file."""
    files = {"json/envelope.schema.json": _json(envelope_schema())}
    for type_name in MESSAGE_TYPES:
        files[f"json/{type_name}.schema.json"] = _json(body_schema(type_name))
        files[f"examples/{type_name}.json"] = _json(json.loads(ENCODER.encode(EXAMPLES[type_name])))
    files["asyncapi.json"] = _json(asyncapi_document())
    files["codes.md"] = codes.markdown_table()
    return dict(sorted(files.items()))


def write(out_dir: Path) -> list[Path]:
    """Replace `out_dir` with freshly generated files; return the paths written."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    written = []
    for relative, content in artefacts().items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: regenerate into `--out` (default `schemas/generated`)."""
    parser = argparse.ArgumentParser(prog="python -m liaison.schemas.generate", description=__doc__)
    parser.add_argument("--out", type=Path, default=GENERATED_DIR)
    args = parser.parse_args(argv)
    written = write(args.out)
    print(f"wrote {len(written)} files under {args.out}")


if __name__ == "__main__":
    main()
