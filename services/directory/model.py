"""The directory file's shape (``deploy/directory.toml``), decoded with msgspec.

The file is declarative: organisations, groups, and policy rules. ``liaison.directory.index``
compiles it into the lookup tables the hub uses per message.
"""

import enum
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from liaison.schemas.types import Classification, OrgId

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Slug = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9-]{1,47}$")]
Account = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9._-]{1,63}$")]
#: A message type, or a family wildcard such as ``hazard.*``, or ``*``.
TypePattern = Annotated[str, Meta(pattern=r"^(\*|[a-z_]+\.\*|[a-z_]+(\.[a-z_]+)?)$")]


class Kind(enum.StrEnum):
    """What sort of organisation this is."""

    DPKO = "dpko"
    MISSION = "mission"
    UN_AGENCY = "un-agency"
    GOVERNMENT = "government"
    NGO = "ngo"


class SignaturePolicy(enum.StrEnum):
    """Whether the hub refuses an organisation's unsigned messages."""

    #: Every message must carry a valid signature (``liaison partner add`` writes this).
    REQUIRED = "required"
    #: A signature, when present, must be valid; an unsigned message passes and is recorded as
    #: ``signature_status = "absent"`` (for a partner migrating to signing).
    WHEN_PRESENT = "when_present"


#: A key id: unique across the directory (the hub's key included).
KeyId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")]
#: A JWK ``x`` value: base64url (no padding) of a 32-byte Ed25519 public key.
PublicKeyX = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{43}$")]
UtcTime = Annotated[datetime, Meta(tz=True)]


class SigningKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One Ed25519 public key an organisation signs with, and when it may sign."""

    kid: KeyId
    public_key: PublicKeyX
    not_before: UtcTime
    not_after: UtcTime


class Organisation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One partner organisation and its broker account."""

    id: OrgId
    name: Name
    kind: Kind
    #: Broker user name; defaults to the organisation id.
    account: Account | None = None
    roles: list[Slug] = []
    missions: list[Slug] = []
    clearance: Classification = Classification.UNCLASSIFIED
    #: Most messages its inbox holds before the broker refuses more (never drops).
    inbox_max_length: Annotated[int, Meta(ge=100)] = 100_000
    #: Public keys its messages are signed with; the private keys never leave the partner.
    signing_keys: list[SigningKey] = []
    #: A directory written before signing existed reads as "when_present" (its partners keep
    #: working while they adopt signing); `liaison partner add` writes "required".
    signatures: SignaturePolicy = SignaturePolicy.WHEN_PRESENT
    #: The field site (``[[sites]]`` id) it works from, reached through ``liaison relay``;
    #: None: it connects to headquarters directly.
    site: Slug | None = None

    @property
    def broker_account(self) -> str:
        """The broker user this organisation logs in as."""
        return self.account or self.id


class Site(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A field site: its own small broker, linked to headquarters by ``liaison relay``."""

    id: Slug
    name: Name
    #: The broker account the site's relay logs in to headquarters with; defaults to
    #: ``site-<id>``. It may publish only for the organisations registered at the site.
    account: Account | None = None

    @property
    def broker_account(self) -> str:
        """The broker user the site's relay logs in as at headquarters."""
        return self.account or f"site-{self.id}"


class Selector(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Picks organisations: any one criterion matching is enough; ``any`` picks everyone."""

    any: bool = False
    kinds: list[Kind] = []
    roles: list[Slug] = []
    missions: list[Slug] = []
    organisations: list[OrgId] = []
    groups: list[Slug] = []


class Group(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A named set of organisations, addressed as ``group:<id>``."""

    id: Slug
    name: Name
    members: Selector


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Senders picked by ``senders`` may send ``types`` to recipients picked by ``recipients``."""

    description: Name
    types: Annotated[list[TypePattern], Meta(min_length=1)]
    senders: Selector
    recipients: Selector


class Directory(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole directory file."""

    version: Annotated[int, Meta(ge=1, le=1)] = 1
    #: The hub's own broker account.
    hub_account: Account = "liaison-hub"
    #: The operators' account: reads dead letters and replays them as their original sender
    #: (RabbitMQ's ``impersonator`` tag lets it publish with another ``user_id``).
    operator_account: Account = "liaison-operator"
    #: The ledger's account: reads its own queue, writes status reports into routine inboxes.
    ledger_account: Account = "liaison-ledger"
    organisations: Annotated[list[Organisation], Meta(min_length=1)]
    groups: list[Group] = []
    rules: list[Rule] = []
    sites: list[Site] = []
