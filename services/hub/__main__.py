"""``python -m liaison.hub``: run the hub with settings from the environment."""

import sys

from liaison.common.errors import LiaisonError
from liaison.hub.run import run_hub
from liaison.hub.settings import HubSettings


def main() -> int:
    """Entry point; configuration problems are one line on stderr and exit 1."""
    try:
        settings = HubSettings.from_env()
        run_hub(settings)
    except LiaisonError as exc:
        print(f"liaison hub: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
