"""The directory file's shape (``deploy/directory.toml``), decoded with msgspec.

The file is declarative: organisations, groups, and policy rules. ``liaison.directory.index``
compiles it into the lookup tables the hub uses per message.
"""

import enum
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

    @property
    def broker_account(self) -> str:
        """The broker user this organisation logs in as."""
        return self.account or self.id


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
    organisations: Annotated[list[Organisation], Meta(min_length=1)]
    groups: list[Group] = []
    rules: list[Rule] = []
