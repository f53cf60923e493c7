"""``liaison tail``: a live, readable view of a partner's inbox (flash first)."""

import argparse
import sys
from pathlib import Path

from liaison.cli.login import add_broker_arguments, broker_tls, partner_login
from liaison.cli.render import dim, message_line, quiet_logging, use_colour
from liaison.sdk import Client


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``liaison tail``."""
    parser = sub.add_parser(
        "tail",
        help="watch a partner's inbox",
        description="Print each message arriving in ORG's inbox and flash inbox: time, "
        "precedence, sender → type, and a one-line summary; the hub's error reports are "
        "highlighted with their code and field path. Without --ack messages are only looked "
        "at and stay in the inbox.",
    )
    parser.add_argument("--as", dest="org", required=True, metavar="ORG", help="read ORG's inbox")
    add_broker_arguments(parser)
    parser.add_argument("--count", type=_positive, metavar="N", help="stop after N messages")
    parser.add_argument("--ack", action="store_true", help="acknowledge (remove) what is shown")
    parser.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="stop when nothing arrives for SECONDS (default: wait forever)",
    )
    parser.add_argument(
        "--trusted-keys",
        type=Path,
        metavar="signing-keys.json",
        help="verify each message's signature against these public keys and say who signed",
    )
    parser.set_defaults(handler=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


async def run(args: argparse.Namespace) -> int:
    """Print deliveries until --count, --wait, Ctrl-C or SIGTERM (each a clean exit 0)."""
    quiet_logging()
    url, account = partner_login(args.org, args.url)
    colour = use_colour()
    shown = 0
    async with (
        Client.connect(
            args.org,
            url,
            account=account,
            ssl_context=broker_tls(args, url),
            trusted_keys=args.trusted_keys,
        ) as client,
        client.inbox() as inbox,
    ):
        inbox.stop_on_signals()
        print(dim(f"watching inbox.{args.org} and inbox.{args.org}.flash", colour=colour))
        sys.stdout.flush()
        while args.count is None or shown < args.count:
            if args.wait is None:
                delivery = await anext(inbox, None)
            else:
                delivery = await inbox.get(args.wait)
            if delivery is None:
                if not inbox.stopped:
                    print(dim(f"(nothing more within {args.wait:g}s)", colour=colour))
                break
            again = " (redelivered)" if delivery.redelivered else ""
            signed = ""
            if args.trusted_keys is not None:
                signed = (
                    f"  [signed by {delivery.signed_by}, {delivery.signature_kid}]"
                    if delivery.verified
                    else f"  [NOT VERIFIED: {delivery.signature_problem}]"
                )
            print(message_line(delivery.envelope, colour=colour) + again + signed)
            sys.stdout.flush()
            if args.ack:
                await delivery.ack()
            shown += 1
    return 0
