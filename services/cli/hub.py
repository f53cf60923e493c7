"""``liaison hub``: run the routing hub."""

import argparse
import os

from liaison.hub.run import run_hub
from liaison.hub.settings import HubSettings


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``liaison hub``."""
    parser = sub.add_parser(
        "hub",
        help="run the routing hub",
        description="Run the routing hub. Settings come from LIAISON_* variables; the flags "
        "below override them.",
    )
    parser.add_argument("--directory", help="directory file (LIAISON_DIRECTORY)")
    parser.add_argument(
        "--shards", help="shards to consume, 'all' or e.g. 0,2 (LIAISON_HUB_SHARDS)"
    )
    parser.add_argument(
        "--port", type=int, help="HTTP port for health and metrics (LIAISON_HTTP_PORT)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.directory:
        env["LIAISON_DIRECTORY"] = args.directory
    if args.shards:
        env["LIAISON_HUB_SHARDS"] = args.shards
    if args.port is not None:
        env["LIAISON_HTTP_PORT"] = str(args.port)
    run_hub(HubSettings.from_env(env))
    return 0
