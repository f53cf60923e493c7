"""A partner's inbox desk on the Liaison SDK: handle each message once, answer, stop cleanly.

Reads the organisation's inbox (flash first), sends a receipt for each message it handles,
prints one line per message, and stops on Ctrl-C or SIGTERM. It rides through broker restarts
and dropped connections without losing or repeating a message.

Environment:
  LIAISON_AMQP_URL   broker and vhost, no credentials, e.g. amqps://broker.example.org/liaison
  LIAISON_ORG        your organisation id, e.g. unmas
  LIAISON_ACCOUNT    your broker account (default: the organisation id)
  LIAISON_PASSWORD   its password
  LIAISON_PREFETCH   how many deliveries to buffer (default 32)
"""

import asyncio
import logging
import os
import sys

from liaison.sdk import AckLevel, Client, Delivery, HazardAlert, SdkError


async def handle(delivery: Delivery) -> None:
    """Your application's work for one message; here a line on stdout and a receipt."""
    if (refusal := delivery.error_report) is not None:
        print(f"refused {refusal.ref_distribution_id}: {refusal.code} {refusal.reason}")
    elif (receipt := delivery.acknowledgement) is not None:
        print(f"receipt {receipt.ref_distribution_id}: {receipt.level} from {delivery.sender}")
    else:
        urgent = " URGENT" if isinstance(delivery.body, HazardAlert) else ""
        print(f"handled {delivery.envelope.distribution_id} {delivery.type} from "
              f"{delivery.sender}{urgent}", flush=True)  # fmt: skip
        await delivery.receipt(AckLevel.ACCEPTED)


async def main() -> None:
    """Read the inbox until Ctrl-C or SIGTERM."""
    org = os.environ["LIAISON_ORG"]
    async with (
        Client.connect(
            org,
            os.environ["LIAISON_AMQP_URL"],
            account=os.environ.get("LIAISON_ACCOUNT", org),
            password=os.environ["LIAISON_PASSWORD"],
            prefetch=int(os.environ.get("LIAISON_PREFETCH", "32")),
        ) as client,
        client.inbox() as inbox,
    ):
        inbox.stop_on_signals()  # Ctrl-C and SIGTERM end the loop after the current message
        print(f"reading the inbox of {org}", flush=True)
        async for delivery in inbox:
            await handle(delivery)
            await delivery.ack()
        print(
            f"stopped: {inbox.duplicates} duplicates skipped, "
            f"{inbox.stale} deliveries of dropped connections redelivered",
            flush=True,
        )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)  # reconnects are the SDK's business
    logging.getLogger("aio_pika").setLevel(logging.CRITICAL)
    try:
        asyncio.run(main())
    except SdkError as exc:  # each says what to change: the URL's vhost, the password, ...
        sys.exit(f"partner: {exc}")
