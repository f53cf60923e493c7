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
  LIAISON_SIGNING_KEY  your Ed25519 private key file (receipts are signed with it)
  LIAISON_SIGNING_KID  its key id in the directory
  LIAISON_TRUSTED_KEYS signing-keys.json from your partner bundle: who signed each delivery
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
        signed = (
            f"signed by {delivery.signed_by} ({delivery.signature_kid})"
            if delivery.verified
            else f"NOT VERIFIED: {delivery.signature_problem}"
        )
        print(f"handled {delivery.envelope.distribution_id} {delivery.type} from "
              f"{delivery.sender}{urgent}, {signed}", flush=True)  # fmt: skip
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
            signing_key=os.environ["LIAISON_SIGNING_KEY"],
            signing_kid=os.environ["LIAISON_SIGNING_KID"],
            trusted_keys=os.environ.get("LIAISON_TRUSTED_KEYS"),
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
