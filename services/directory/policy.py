"""One partner's own contract: what it may send, to which addresses, at which classification.

Read from the compiled directory (the same tables the hub decides with), so what this says a
partner may do is what the hub lets it do. `liaison partner policy ORG` prints it for the
operator to hand to the partner.
"""

import msgspec

from liaison.directory.index import HUB_ONLY_TYPES, REPLY_TYPES, DirectoryIndex
from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.types import Classification

__all__ = ["PartnerPolicy", "TypePolicy", "markdown", "partner_policy"]


class TypePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Whom one message type may go to."""

    type: str
    #: Addresses every other member of which may receive the type: nothing is refused.
    addresses: list[str]
    #: Addresses only some members of which may receive it; the others are refused (204).
    partly: dict[str, list[str]]
    #: Classification -> the permitted organisations cleared for it; the others are refused (205).
    cleared: dict[Classification, list[str]]


class PartnerPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the directory lets one organisation send, and what it may receive."""

    organisation: str
    #: The highest classification this organisation may receive.
    clearance: Classification
    sends: list[TypePolicy]
    #: Partner message types it may not send to anyone (203).
    may_not_send: list[str]
    #: Types with their own rule: an `ack` goes back to the original sender of a message, a
    #: `status.request` to the ledger (`org:liaison`).
    replies: list[str]


def partner_policy(index: DirectoryIndex, org: str) -> PartnerPolicy:
    """The policy of ``org``; KeyError if the directory has no such organisation."""
    organisation = index.organisations[org]
    sends: list[TypePolicy] = []
    may_not_send: list[str] = []
    for message_type in MESSAGE_TYPES:
        if message_type in HUB_ONLY_TYPES | REPLY_TYPES:
            continue
        # The hub leaves the sender out of its own fan-out, so it never counts as a recipient.
        permitted = index.permitted_recipients(org, message_type) - {org}
        if not permitted:
            may_not_send.append(message_type)
            continue
        addresses: list[str] = []
        partly: dict[str, list[str]] = {}
        for address, members in sorted(index.addresses.items()):
            others = members - {org}
            if others and others <= permitted:
                addresses.append(address)
            elif others & permitted:
                partly[address] = sorted(others & permitted)
        cleared = {level: sorted(permitted & index.cleared_for(level)) for level in Classification}
        sends.append(
            TypePolicy(type=message_type, addresses=addresses, partly=partly, cleared=cleared)
        )
    return PartnerPolicy(
        organisation=org,
        clearance=organisation.clearance,
        sends=sends,
        may_not_send=may_not_send,
        replies=sorted(REPLY_TYPES),
    )


def markdown(policy: PartnerPolicy) -> str:
    """The policy as a Markdown document for the partner."""
    org = policy.organisation
    lines = [
        f"# What `{org}` may send through Liaison",
        "",
        "Generated from the Liaison directory (`liaison partner policy "
        f"{org}`); the hub applies the same rules.",
        "",
        f"- `{org}` receives messages classified up to `{policy.clearance.value}`.",
        "- You are left out of your own fan-out: an address that includes you reaches the others.",
        "- Receipts (`ack`) go to the original sender of a message you received, whatever the "
        "policy says; a `status.request` for one of your messages goes to `org:liaison`; "
        "`error.report` and `status.report` are the hub's alone.",
    ]
    if policy.may_not_send:
        lines.append(
            "- You may not send (203): " + ", ".join(f"`{t}`" for t in policy.may_not_send) + "."
        )
    for entry in policy.sends:
        lines += ["", f"## `{entry.type}`", ""]
        lines.append("Addresses (all members may receive it): " + _codes(entry.addresses) + ".")
        if entry.partly:
            lines += ["", "Addresses only some members of which may receive it (the rest: 204):"]
            lines += [f"- `{a}`: {_codes(members)}" for a, members in entry.partly.items()]
        lines += ["", "Recipients cleared per classification (the rest: 205):"]
        lines += [f"- `{level.value}`: {_codes(orgs)}" for level, orgs in entry.cleared.items()]
    return "\n".join(lines) + "\n"


def _codes(items: list[str]) -> str:
    return ", ".join(f"`{item}`" for item in items) if items else "none"
