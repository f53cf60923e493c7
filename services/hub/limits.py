"""How many messages each inbox may hold, as the broker enforces it, for transaction mode's guard.

A queue's length limit comes from its ``x-max-length`` argument and from any policy or operator
policy whose pattern matches it (the broker keeps the lowest). AMQP cannot read either: the hub
asks the management API for the queues' arguments and the vhost's policies and operator
policies (its account's ``management`` tag lets it read those of its own vhost, nothing it
could change). Policies are read directly rather than through each queue's
``effective_policy_definition``, which the broker reports only at its next statistics emission.

The limit is taken as the lowest of the argument and every matching policy's ``max-length``,
whatever their priorities: at most lower than the broker's (refusing a little early), never
higher. It is unknown (``None``: the guard refuses copies) when a byte limit applies
(``max-length-bytes``: the hub counts messages, not bytes) or a policy's pattern does not
compile here. Every limit is treated as refusing (``reject-publish``, the inboxes' own
``x-overflow``), even where a policy makes it ``drop-head``: the guard then refuses copies the
broker would have taken by dropping the oldest, which loses nothing.
"""

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from liaison.common.errors import BrokerAccessRefused
from liaison.common.settings import Secret
from liaison.common.tls import certificate_login
from liaison.common.urls import password_of, user_of, vhost_of
from liaison.directory.credentials import load_credential
from liaison.directory.management import ManagementClient, Policy
from liaison.hub.settings import HubSettings

#: The limit of a queue nothing limits.
UNLIMITED = sys.maxsize

_LENGTH = "max-length"
_BYTES = "max-length-bytes"


def effective_limits(
    arguments: Mapping[str, Mapping[str, Any]], policies: Iterable[Policy]
) -> dict[str, int | None]:
    """Each queue's limit (``UNLIMITED`` when none, ``None`` when unknown) from its declaration
    ``arguments`` (queue name -> arguments) and the vhost's policies and operator policies."""
    limits: dict[str, int | None] = {}
    relevant = [
        p
        for p in policies
        if p.apply_to != "exchanges" and (_LENGTH in p.definition or _BYTES in p.definition)
    ]
    compiled: list[tuple[re.Pattern[str] | None, Policy]] = []
    for policy in relevant:
        try:
            compiled.append((re.compile(policy.pattern), policy))
        except re.error:
            # Erlang's regex dialect accepted it; Python's cannot tell what it matches.
            compiled.append((None, policy))
    for name, args in arguments.items():
        limit = _limit(args.get("x-max-length"))
        if args.get("x-max-length-bytes") is not None:
            limit = None
        for pattern, policy in compiled:
            if limit is None:
                break
            if pattern is not None and not pattern.search(name):
                continue
            if pattern is None or _BYTES in policy.definition:
                limit = None
            else:
                found = _limit(policy.definition.get(_LENGTH))
                limit = None if found is None else min(limit, found)
        limits[name] = limit
    return limits


def _limit(value: object) -> int | None:
    # Absent: no limit. The broker accepts only a non-negative integer; anything else read
    # back cannot be interpreted, so the limit is unknown rather than guessed.
    if value is None:
        return UNLIMITED
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """One reading of the queues on a vhost: each one's limit (``effective_limits``) and type
    (``quorum``, ``classic``…; transaction delivery publishes only to classic queues)."""

    limits: Mapping[str, int | None]
    types: Mapping[str, str | None]


async def read_limits(api: ManagementClient, vhost: str) -> QueueLimits:
    """The limit and type of every queue on ``vhost``, read from the management API now."""
    queues = await api.queue_arguments(vhost)
    policies = await api.policies(vhost) + await api.operator_policies(vhost)
    return QueueLimits(
        effective_limits({q.name: q.arguments for q in queues}, policies),
        {q.name: q.type for q in queues},
    )


class LimitReader:
    """Reads the limits of the queues on the hub's vhost with the hub's own account.

    The account is the first ``LIAISON_AMQP_URL``'s; under certificate login, which names none,
    ``hub_account`` (the directory's). The password is the URL's, else the account's
    provisioned credential (the management API takes a password, never the certificate). A
    client is opened per read: reads come about once a second.
    """

    def __init__(self, settings: HubSettings, hub_account: str) -> None:
        url = settings.amqp_urls[0]
        account = user_of(url)
        if account is None and certificate_login(url):
            account = hub_account
        # A URL naming no account logs in as AMQP's default, guest/guest, as the hub itself does.
        self._account = account or "guest"
        self._password = password_of(url) if account else "guest"
        self._vhost = vhost_of(url) or "/"
        self._url = settings.management_url
        self._ssl = settings.tls.context() if self._url.startswith("https://") else None

    async def __call__(self) -> QueueLimits:
        password = self._password
        if password is None:
            password = load_credential(self._account)
        api = ManagementClient(
            self._url,
            self._account,
            Secret(password),
            timeout=5.0,
            ssl_context=self._ssl,
        )
        try:
            async with api:
                return await read_limits(api, self._vhost)
        except BrokerAccessRefused:
            raise BrokerAccessRefused(
                f"the management API at {self._url} refused the hub's account "
                f"{self._account!r} (its password is LIAISON_AMQP_URL's, else its provisioned "
                "credential)"
            ) from None
