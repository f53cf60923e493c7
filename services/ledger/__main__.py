"""``python -m liaison.ledger``: run the ledger with settings from the environment."""

import sys

from liaison.common.errors import LiaisonError
from liaison.ledger.run import run_ledger
from liaison.ledger.settings import LedgerSettings


def main() -> int:
    """Entry point; configuration problems are one line on stderr and exit 1."""
    try:
        run_ledger(LedgerSettings.from_env())
    except LiaisonError as exc:
        print(f"liaison ledger: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
