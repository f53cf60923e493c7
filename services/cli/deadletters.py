"""``liaison dead-letters``: list, show and replay what the hub refused (an operator's tool)."""

import argparse
import json
import sys
from pathlib import Path

from liaison.cli.dead_letter_store import DeadLetter, DeadLetterQueue
from liaison.cli.login import add_broker_arguments, broker_tls, operator_url
from liaison.cli.render import quiet_logging, table
from liaison.cli.replay import Replayer, ReplayLog
from liaison.common.errors import ConfigError, LiaisonError
from liaison.common.urls import user_of


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``liaison dead-letters`` and its actions."""
    parser = sub.add_parser(
        "dead-letters",
        help="list, show and replay refused messages",
        description="Inspect the dead-letter queue as the operator (--url, else "
        "LIAISON_OPERATOR_URL, else LIAISON_ADMIN_USER on LIAISON_AMQP_URL). Replay needs an "
        "account with the broker's 'impersonator' tag.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="a table of dead letters, oldest first")
    add_broker_arguments(listing)
    listing.add_argument("--limit", type=_positive, default=50, metavar="N", help="(default 50)")
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", help="one dead letter: refusal, properties, body")
    add_broker_arguments(show)
    show.add_argument("id", help="dead-letter id (from list) or distribution id")
    show.set_defaults(handler=run_show)

    replay = actions.add_parser(
        "replay",
        help="put dead letters back where they were going: a refusal to the hub as its "
        "original sender, an inbox dead letter into its inbox",
    )
    add_broker_arguments(replay)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="dead-letter id or distribution id")
    which.add_argument("--all", action="store_true", help="every dead letter in the queue")
    replay.add_argument("--yes", action="store_true", help="do not ask before --all")
    replay.add_argument("--force", action="store_true", help="replay even if replayed before")
    replay.add_argument(
        "--log", type=Path, help="replay log (default LIAISON_REPLAY_LOG or ./var/replays.jsonl)"
    )
    replay.set_defaults(handler=run_replay)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


async def run_list(args: argparse.Namespace) -> int:
    """Print the dead letters as a table."""
    quiet_logging()
    url = operator_url(args.url)
    async with DeadLetterQueue(url, ssl_context=broker_tls(args, url)) as queue:
        letters = await queue.browse(args.limit)
    if not letters:
        print("no dead letters")
        return 0
    rows = [("ID", "WHEN", "CODE", "REASON", "SENDER/USER", "TYPE", "DISTRIBUTION ID")]
    rows += [
        (
            d.id,
            d.when,
            "-" if d.code is None else str(d.code),
            _clip(d.reason, 48),
            _who(d),
            d.message_type or "-",
            d.distribution_id or "-",
        )
        for d in letters
    ]
    for line in table(rows):
        print(line)
    return 0


async def run_show(args: argparse.Namespace) -> int:
    """Print one dead letter in full."""
    quiet_logging()
    url = operator_url(args.url)
    async with DeadLetterQueue(url, ssl_context=broker_tls(args, url)) as queue:
        letter = _find(await queue.browse(), args.id)
    print(f"dead letter   {letter.id}")
    print(f"refused at    {letter.refused_at or '-'}")
    print(f"code          {letter.code if letter.code is not None else '-'}")
    print(f"reason        {letter.reason or '-'}")
    print(f"field         {letter.field_path or '-'}")
    print(f"sender/user   {letter.routing_key or '-'} / {letter.original_user or '-'}")
    if letter.inbox is not None:
        print(f"died in       {letter.inbox} (replay puts it back there)")
    print(f"type          {letter.message_type or '-'}")
    print(f"distribution  {letter.distribution_id or '-'}")
    for key, value in sorted(letter.headers.items()):
        print(f"header        {key}: {value}")
    print("body:")
    try:
        print(json.dumps(json.loads(letter.body), indent=2, ensure_ascii=False))
    except (json.JSONDecodeError, UnicodeDecodeError):
        print(repr(letter.body[:2000]))
    return 0


async def run_replay(args: argparse.Namespace) -> int:
    """Replay one or all dead letters, each at most once unless --force."""
    quiet_logging()
    url = operator_url(args.url)
    operator = user_of(url) or ""
    log = ReplayLog.from_env(args.log)
    async with DeadLetterQueue(url, ssl_context=broker_tls(args, url)) as queue:
        letters = await queue.browse()
        chosen = letters if args.all else [_find(letters, args.id)]
        if not chosen:
            print("no dead letters")
            return 0
        if args.all and not args.yes and not _confirmed(len(chosen)):
            print("nothing replayed")
            return 1
        replayer = await Replayer.open(queue.connection, operator, log)
        replayed = skipped = 0
        for number, letter in enumerate(chosen, start=1):
            earlier = log.previous(letter)
            if earlier is not None and not args.force:
                skipped += 1
                message = (
                    f"{letter.id} ({letter.message_key}) was replayed at {earlier.replayed_at} "
                    f"by {earlier.replayed_by}; use --force to replay it again"
                )
                if not args.all:
                    raise ConfigError(message)
                print(f"[{number}/{len(chosen)}] skipped {message}", file=sys.stderr)
                continue
            await replayer.replay(letter)
            await queue.remove(letter)
            replayed += 1
            where = (
                f"into {letter.inbox}" if letter.inbox is not None else f"as {letter.routing_key}"
            )
            print(
                f"[{number}/{len(chosen)}] replayed {letter.id} {where} "
                f"({letter.message_type or 'unknown type'}, {letter.distribution_id or '-'})",
                file=sys.stderr,
            )
    print(f"replayed {replayed}, skipped {skipped}; recorded in {log.path}")
    return 0


def _find(letters: list[DeadLetter], wanted: str) -> DeadLetter:
    by_id = [d for d in letters if d.id == wanted]
    if by_id:
        return by_id[0]
    by_distribution = [d for d in letters if d.distribution_id == wanted]
    if len(by_distribution) == 1:
        return by_distribution[0]
    if len(by_distribution) > 1:
        ids = ", ".join(d.id for d in by_distribution)
        raise LiaisonError(f"{wanted!r} matches {len(by_distribution)} dead letters ({ids})")
    raise LiaisonError(f"no dead letter {wanted!r} in the queue")


def _confirmed(count: int) -> bool:
    if not sys.stdin.isatty():
        raise ConfigError("replay --all asks for confirmation: add --yes when not on a terminal")
    answer = input(f"replay {count} dead letters as their original senders? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _who(letter: DeadLetter) -> str:
    """A refusal's routing key and account; an inbox dead letter's sender and inbox."""
    if letter.inbox is not None:
        return f"{letter.sender or '-'} → {letter.inbox}"
    return f"{letter.routing_key or '-'}/{letter.original_user or '-'}"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
