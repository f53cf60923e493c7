"""The directory compiled into the tables the hub consults for every message.

Compiling once at load time turns every per-message question (who is behind this account, who
is in that group, may this sender send that type to whom, who is cleared for it) into a dict
lookup and a set intersection.
"""

import fnmatch
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import msgspec

from liaison.common.errors import DirectoryError
from liaison.directory.model import Directory, Group, Organisation, Selector, SignaturePolicy
from liaison.schemas.catalogue import HUB_ONLY_TYPES as HUB_ONLY_TYPES  # the router's, too
from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.types import CLASSIFICATION_RANK, Classification
from liaison.schemas.wire import HUB_SENDER
from liaison.sdk.signing import TrustedKey

#: The hub's own key ids start so (``liaison.common.hub_key``); no organisation's may.
HUB_KID_PREFIX = "liaison-hub-"

#: Types routed by their own rule (back to the sender of the referenced message), not by policy.
REPLY_TYPES = frozenset({"ack", "status.request"})
#: The sender id of the hub's own messages; no organisation may take it.
HUB_SENDER_ID = HUB_SENDER

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class DirectoryIndex:
    """Read-only lookups over one version of the directory."""

    directory: Directory
    organisations: Mapping[str, Organisation]
    by_account: Mapping[str, str]
    addresses: Mapping[str, frozenset[str]]
    permitted: Mapping[tuple[str, str], frozenset[str]]
    cleared: Mapping[Classification, frozenset[str]]
    #: Every organisation's registered public keys, by kid (unique across the directory).
    signing_keys: Mapping[str, TrustedKey]
    #: Organisations whose unsigned messages are refused.
    signatures_required: frozenset[str]
    #: A field site's broker account -> the organisations registered at that site.
    site_accounts: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def orgs_for_site_account(self, account: str) -> frozenset[str] | None:
        """The organisations a site's relay account may speak for; None if not a site's."""
        return self.site_accounts.get(account)

    def org_for_account(self, account: str) -> str | None:
        """The organisation id behind a broker account, or None."""
        return self.by_account.get(account)

    def resolve(self, address: str) -> frozenset[str] | None:
        """Organisations an address (``org:``, ``group:``, ``role:``, ``mission:``) names."""
        return self.addresses.get(address)

    def permitted_recipients(self, sender: str, message_type: str) -> frozenset[str]:
        """Organisations ``sender`` may send ``message_type`` to."""
        return self.permitted.get((sender, message_type), frozenset())

    def cleared_for(self, classification: Classification) -> frozenset[str]:
        """Organisations whose clearance is at least ``classification``."""
        return self.cleared[classification]


def load_directory(path: Path) -> DirectoryIndex:
    """Read, validate and compile a directory file; any problem is a DirectoryError naming it."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DirectoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DirectoryError(f"{path}: not valid TOML: {exc}") from None
    try:
        directory = msgspec.convert(raw, Directory)
    except msgspec.ValidationError as exc:
        raise DirectoryError(f"{path}: {exc}") from None
    return compile_directory(directory, source=str(path))


def compile_directory(directory: Directory, *, source: str = "directory") -> DirectoryIndex:
    """Check cross-references and build the lookup tables."""
    if any(o.id == HUB_SENDER for o in directory.organisations):
        raise DirectoryError(f"{source}: organisation id {HUB_SENDER!r} is reserved for the hub")
    services = (directory.hub_account, directory.operator_account, directory.ledger_account)
    if len(set(services)) != len(services):
        raise DirectoryError(
            f"{source}: hub_account, operator_account and ledger_account must all differ"
        )
    orgs = _unique(
        {o.id: o for o in directory.organisations}, directory.organisations, "id", source
    )
    by_account: dict[str, str] = {}
    for org in directory.organisations:
        account = org.broker_account
        if account in by_account or account in services:
            raise DirectoryError(f"{source}: broker account {account!r} is used twice")
        by_account[account] = org.id
    groups = _unique({g.id: g for g in directory.groups}, directory.groups, "id", source)
    site_accounts = _site_accounts(directory, by_account, source)

    group_members: dict[str, frozenset[str]] = {}
    for group in directory.groups:
        group_members[group.id] = _select(group.members, orgs, group_members, groups, source)

    addresses: dict[str, frozenset[str]] = {}
    for org in orgs.values():
        addresses[f"org:{org.id}"] = frozenset({org.id})
        for role in org.roles:
            addresses[f"role:{role}"] = addresses.get(f"role:{role}", frozenset()) | {org.id}
        for mission in org.missions:
            key = f"mission:{mission}"
            addresses[key] = addresses.get(key, frozenset()) | {org.id}
    for gid, members in group_members.items():
        addresses[f"group:{gid}"] = members

    permitted: dict[tuple[str, str], set[str]] = {}
    for number, rule in enumerate(directory.rules, start=1):
        types = _expand_types(rule.types, f"{source}: rule {number} ({rule.description})")
        senders = _select(rule.senders, orgs, group_members, groups, source)
        recipients = _select(rule.recipients, orgs, group_members, groups, source)
        for sender in senders:
            for message_type in types:
                permitted.setdefault((sender, message_type), set()).update(recipients)

    cleared = {
        level: frozenset(o.id for o in orgs.values() if CLASSIFICATION_RANK[o.clearance] >= rank)
        for level, rank in CLASSIFICATION_RANK.items()
    }
    return DirectoryIndex(
        directory=directory,
        organisations=orgs,
        by_account=by_account,
        addresses=addresses,
        permitted={key: frozenset(value) for key, value in permitted.items()},
        cleared=cleared,
        signing_keys=_signing_keys(orgs.values(), source),
        signatures_required=frozenset(
            o.id for o in orgs.values() if o.signatures is SignaturePolicy.REQUIRED
        ),
        site_accounts=site_accounts,
    )


def _signing_keys(orgs: Iterable[Organisation], source: str) -> dict[str, TrustedKey]:
    keys: dict[str, TrustedKey] = {}
    for org in orgs:
        for key in org.signing_keys:
            where = f"{source}: {org.id}: signing key {key.kid!r}"
            if key.kid in keys:
                raise DirectoryError(f"{where} is registered twice (kids are unique)")
            if key.kid.startswith(HUB_KID_PREFIX):
                raise DirectoryError(f"{where}: kids starting {HUB_KID_PREFIX!r} are the hub's")
            if key.not_before >= key.not_after:
                raise DirectoryError(f"{where}: not_before must be before not_after")
            try:
                keys[key.kid] = TrustedKey.from_x(
                    key.kid, org.id, key.public_key, key.not_before, key.not_after
                )
            except ValueError as exc:
                raise DirectoryError(f"{where}: {exc}") from None
    return keys


def _site_accounts(
    directory: Directory, by_account: Mapping[str, str], source: str
) -> dict[str, frozenset[str]]:
    sites = _unique({s.id: s for s in directory.sites}, directory.sites, "id", source)
    members: dict[str, set[str]] = {sid: set() for sid in sites}
    for org in directory.organisations:
        if org.site is None:
            continue
        if org.site not in sites:
            raise DirectoryError(
                f"{source}: organisation {org.id!r} names unknown site {org.site!r}"
            )
        members[org.site].add(org.id)
    accounts: dict[str, frozenset[str]] = {}
    taken = {
        *by_account,
        directory.hub_account,
        directory.operator_account,
        directory.ledger_account,
    }
    for site in directory.sites:
        account = site.broker_account
        if account in taken or account in accounts:
            raise DirectoryError(f"{source}: broker account {account!r} is used twice")
        accounts[account] = frozenset(members[site.id])
    return accounts


def _unique(table: dict[str, _T], items: list[_T], what: str, source: str) -> dict[str, _T]:
    if len(table) != len(items):
        seen: set[str] = set()
        for item in items:
            key = getattr(item, what)
            if key in seen:
                raise DirectoryError(f"{source}: {type(item).__name__.lower()} {key!r} is twice")
            seen.add(key)
    return table


def _expand_types(patterns: Iterable[str], where: str) -> set[str]:
    types: set[str] = set()
    for pattern in patterns:
        matched = {
            t
            for t in MESSAGE_TYPES
            if fnmatch.fnmatchcase(t, pattern) and t not in HUB_ONLY_TYPES | REPLY_TYPES
        }
        if not matched:
            raise DirectoryError(f"{where}: type {pattern!r} matches no partner message type")
        types |= matched
    return types


def _select(
    selector: Selector,
    orgs: Mapping[str, Organisation],
    group_members: Mapping[str, frozenset[str]],
    groups: Mapping[str, Group],
    source: str,
) -> frozenset[str]:
    if selector.any:
        return frozenset(orgs)
    for oid in selector.organisations:
        if oid not in orgs:
            raise DirectoryError(f"{source}: unknown organisation {oid!r} in a selector")
    picked = set(selector.organisations)
    for gid in selector.groups:
        if gid not in groups:
            raise DirectoryError(f"{source}: unknown group {gid!r} in a selector")
        if gid not in group_members:
            raise DirectoryError(f"{source}: group {gid!r} is used before it is defined")
        picked |= group_members[gid]
    kinds, roles, missions = set(selector.kinds), set(selector.roles), set(selector.missions)
    for org in orgs.values():
        if (
            org.kind in kinds
            or roles.intersection(org.roles)
            or missions.intersection(org.missions)
        ):
            picked.add(org.id)
    return frozenset(picked)
