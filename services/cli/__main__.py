"""``liaison`` — run the hub, provision partners, send, tail, inspect dead letters, run the demo.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``; the parser it adds
sets ``handler`` to a function taking the parsed namespace and returning an exit code (or an
awaitable of one). Errors from the LiaisonError tree and the partner SDK's SdkError tree become
a one-line message and exit 1; bad arguments exit 2 (argparse's convention).
"""

import argparse
import asyncio
import importlib
import inspect
import os
import sys
from collections.abc import Sequence

from liaison.common.errors import LiaisonError
from liaison.sdk.errors import SdkError

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "liaison.cli.hub",
    "liaison.cli.provision",
    "liaison.cli.partner",
    "liaison.cli.send",
    "liaison.cli.tail",
    "liaison.cli.deadletters",
    "liaison.cli.ledger",
    "liaison.cli.track",
    "liaison.cli.audit",
    "liaison.cli.evidence",
    "liaison.cli.demo",
    "liaison.cli.relay",
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every subcommand module that is installed."""
    parser = argparse.ArgumentParser(
        prog="liaison",
        description="Liaison: inter-agency coordination messaging over RabbitMQ.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``liaison`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
        if inspect.isawaitable(result):
            result = _run(result)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`liaison dead-letters list | head`): stop quietly, and point
        # stdout at /dev/null so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except (LiaisonError, SdkError) as exc:
        print(f"liaison {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return int(result)


def _run(awaitable: object) -> int:
    async def wrapper() -> int:
        return int(await awaitable)  # type: ignore[misc]

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        return asyncio.run(wrapper())
    return uvloop.run(wrapper())


if __name__ == "__main__":
    sys.exit(main())
