"""The provisioning diff and the permission regexes, without a broker."""

import re
from dataclasses import replace

import msgspec

from liaison.common.settings import Secret
from liaison.directory.credentials import HASHING_ALGORITHM, password_hash
from liaison.directory.definitions import DesiredState, desired_state
from liaison.directory.index import compile_directory
from liaison.directory.management import Binding, Queue, TopicPermission, User
from liaison.directory.model import Directory, Kind, Organisation
from liaison.directory.plan import BrokerState, Verb, plan_changes

VHOST = "liaison"


def _desired(*orgs: str) -> DesiredState:
    directory = Directory(
        organisations=[Organisation(id=o, name=o.upper(), kind=Kind.NGO) for o in orgs]
    )
    return desired_state(compile_directory(directory), VHOST)


def _mirror(desired: DesiredState, passwords: dict[str, str]) -> BrokerState:
    """The broker state that provisioning ``desired`` with ``passwords`` would leave."""
    return BrokerState(
        vhost_exists=True,
        users={
            a: User(
                a, password_hash(passwords[a]), HASHING_ALGORITHM, list(desired.tags.get(a, ()))
            )
            for a in desired.accounts
        },
        permissions=dict(desired.permissions),
        topic_permissions={(t.user, t.exchange): t for t in desired.topic_permissions.values()},
        exchanges={e.name: e for e in desired.exchanges},
        queues={q.name: q for q in desired.queues},
        bindings=desired.bindings,
    )


def _secrets(passwords: dict[str, str]) -> dict[str, Secret | None]:
    return {a: Secret(p) for a, p in passwords.items()}


PASSWORDS = {
    "liaison-hub": "h",
    "liaison-operator": "o",
    "liaison-ledger": "l",
    "mag": "m",
    "nrc": "n",
}


def test_empty_broker_gets_everything_in_dependency_order() -> None:
    """Against an empty broker the plan creates vhost, exchanges, queues, bindings, then rights."""
    desired = _desired("mag", "nrc")
    plan = plan_changes(desired, BrokerState(False, {}, {}, {}, {}, {}, ()), {})
    kinds = [s.kind for s in plan.steps]
    assert kinds[0] == "vhost"
    assert kinds.index("exchange") < kinds.index("queue") < kinds.index("binding")
    assert kinds.index("binding") < kinds.index("user") < kinds.index("permissions")
    assert all(s.verb is Verb.CREATE for s in plan.steps)


def test_matching_broker_plans_nothing() -> None:
    """When the broker holds the directory with the stored passwords, nothing is planned."""
    desired = _desired("mag", "nrc")
    plan = plan_changes(desired, _mirror(desired, PASSWORDS), _secrets(PASSWORDS))
    assert plan.steps == ()


def test_changed_stored_password_updates_the_user() -> None:
    """A stored credential that differs from the broker's hash updates that user only."""
    desired = _desired("mag", "nrc")
    plan = plan_changes(desired, _mirror(desired, PASSWORDS), _secrets({**PASSWORDS, "mag": "x"}))
    assert [(s.verb, s.kind, s.name) for s in plan.steps] == [(Verb.UPDATE, "user", "mag")]


def test_existing_user_without_credential_is_a_conflict() -> None:
    """A user that exists with no stored credential is reported, not silently re-passworded."""
    desired = _desired("mag")
    known = {"liaison-hub": "h", "liaison-operator": "o", "liaison-ledger": "l"}
    plan = plan_changes(desired, _mirror(desired, {**PASSWORDS}), _secrets(known))
    assert [(s.verb, s.name) for s in plan.steps] == [(Verb.CONFLICT, "mag")]
    assert "rotate-credentials" in plan.steps[0].detail


def test_queue_argument_difference_is_a_conflict() -> None:
    """A queue whose arguments differ is a conflict naming the argument, never a re-create."""
    desired = _desired("mag")
    actual = _mirror(desired, PASSWORDS)
    queue = actual.queues["inbox.mag"]
    changed = Queue("inbox.mag", arguments={**queue.arguments, "x-max-length": 5}, messages=3)
    actual = replace(actual, queues={**actual.queues, "inbox.mag": changed})
    plan = plan_changes(desired, actual, _secrets(PASSWORDS))
    assert [(s.verb, s.name) for s in plan.steps] == [(Verb.CONFLICT, "inbox.mag")]
    assert "x-max-length" in plan.steps[0].detail
    assert "3 messages" in plan.steps[0].detail


def test_every_queue_asks_for_a_balanced_leader() -> None:
    """Each quorum queue is declared with the balanced leader locator, so a cluster's leaders
    spread over its nodes instead of all staying on the node provisioning talks to."""
    desired = _desired("mag", "nrc")
    assert len(desired.queues) > 10
    for queue in desired.queues:
        assert queue.arguments["x-queue-type"] == "quorum", queue.name
        assert queue.arguments["x-queue-leader-locator"] == "balanced", queue.name


def test_queue_declared_without_a_leader_locator_is_not_a_conflict() -> None:
    """A queue declared before provisioning asked for a placement plans nothing (its leader is
    placed already), while any other argument difference beside it is still a conflict."""
    desired = _desired("mag")
    actual = _mirror(desired, PASSWORDS)
    unplaced = {
        name: msgspec.structs.replace(
            q,
            arguments={k: v for k, v in q.arguments.items() if k != "x-queue-leader-locator"},
        )
        for name, q in actual.queues.items()
    }
    plan = plan_changes(desired, replace(actual, queues=unplaced), _secrets(PASSWORDS))
    assert plan.steps == ()
    local = {**unplaced["inbox.mag"].arguments, "x-queue-leader-locator": "client-local"}
    changed = Queue("inbox.mag", arguments={**local, "x-max-length": 5}, messages=0)
    plan = plan_changes(
        desired, replace(actual, queues={**unplaced, "inbox.mag": changed}), _secrets(PASSWORDS)
    )
    assert [(s.verb, s.name) for s in plan.steps] == [(Verb.CONFLICT, "inbox.mag")]
    assert "x-max-length" in plan.steps[0].detail


def test_removed_organisation_is_stale_without_prune_and_removed_with_it() -> None:
    """A partner gone from the directory is only reported, unless pruning is asked for."""
    before = _desired("mag", "nrc")
    actual = _mirror(before, PASSWORDS)
    after = _desired("mag")
    stale = plan_changes(after, actual, _secrets(PASSWORDS))
    assert stale.changes == ()
    assert {s.name for s in stale.steps} >= {"nrc", "inbox.nrc", "inbox.nrc.flash"}
    pruned = plan_changes(after, actual, _secrets(PASSWORDS), prune=True)
    verbs = {(s.verb, s.kind, s.name) for s in pruned.steps}
    assert (Verb.DELETE, "user", "nrc") in verbs
    assert (Verb.CLOSE, "connections", "nrc") in verbs
    assert (Verb.DELETE_IF_EMPTY, "queue", "inbox.nrc") in verbs
    assert not any(s.verb is Verb.DELETE and s.kind == "queue" for s in pruned.steps)


def test_prune_leaves_administrators_and_multi_vhost_users() -> None:
    """Prune never deletes a tagged (operator) user, nor one with rights on another vhost."""
    desired = _desired("mag")
    actual = _mirror(_desired("mag", "nrc", "wfp"), {**PASSWORDS, "wfp": "w"})
    users = {**actual.users, "wfp": User("wfp", tags=["administrator"])}
    actual = replace(actual, users=users, elsewhere=frozenset({"nrc"}))
    pruned = plan_changes(desired, actual, _secrets(PASSWORDS), prune=True)
    assert not any(s.name == "wfp" for s in pruned.steps)
    assert (Verb.STALE, "user", "nrc") in {(s.verb, s.kind, s.name) for s in pruned.steps}


def test_partner_rights_cover_exactly_its_own_names() -> None:
    """Read covers inbox.<org> and inbox.<org>.flash only; write only the ingress exchange."""
    desired = _desired("gov-car", "gov-carx")
    rights = desired.permissions["gov-car"]
    assert rights.configure == "^$"
    for name, allowed in [
        ("inbox.gov-car", True),
        ("inbox.gov-car.flash", True),
        ("inbox.gov-carx", False),
        ("inbox.gov-car.flashy", False),
        ("inbox.gov-car.flash.x", False),
        ("liaison.hub.0", False),
    ]:
        assert bool(re.search(rights.read, name)) is allowed, name
    assert re.search(rights.write, "liaison.ingress")
    assert not re.search(rights.write, "liaison.ingressx")
    assert not re.search(rights.write, "liaison.delivery")
    topic = desired.topic_permissions["gov-car"]
    assert topic == TopicPermission("gov-car", VHOST, "liaison.ingress", r"^gov\-car$", "^$")


def test_hub_rights_are_shards_delivery_and_dead_letters() -> None:
    """The hub reads its shard queues only and writes the delivery and dead-letter exchanges."""
    rights = _desired("mag").permissions["liaison-hub"]
    assert rights.configure == "^$"
    assert re.search(rights.read, "liaison.hub.12")
    assert re.search(rights.read, "liaison.inbox-dead-letters")
    assert not re.search(rights.read, "liaison.dead-letters")
    assert not re.search(rights.read, "inbox.mag")
    assert re.search(rights.write, "liaison.delivery")
    assert re.search(rights.write, "liaison.dead")
    assert not re.search(rights.write, "liaison.ingress")


def test_operator_account_gets_the_impersonator_tag_back() -> None:
    """An operator account whose impersonator tag was removed by hand gets it restored."""
    desired = _desired("mag", "nrc")
    actual = _mirror(desired, PASSWORDS)
    stripped = dict(actual.users)
    stripped["liaison-operator"] = msgspec.structs.replace(stripped["liaison-operator"], tags=[])
    plan = plan_changes(desired, replace(actual, users=stripped), _secrets(PASSWORDS))
    (step,) = plan.steps
    assert (step.verb, step.kind, step.name) == (Verb.UPDATE, "user", "liaison-operator")
    assert step.payload.tags == ("impersonator",)  # type: ignore[union-attr]


def test_retired_audit_queue_is_unbound_and_deleted_if_empty_without_prune() -> None:
    """A broker that still has liaison.audit gets its '#' bindings deleted and the queue
    deleted-if-empty on a plain run (no --prune), with the command for an operator; no other
    step is planned, and no stale-binding line repeats it."""
    desired = _desired("mag")
    mirror = _mirror(desired, PASSWORDS)
    audit = "liaison.audit"
    bindings = tuple(
        Binding(source, audit, "queue", "#") for source in ("liaison.delivery", "liaison.replay")
    )
    actual = replace(
        mirror,
        queues={**mirror.queues, audit: Queue(name=audit, arguments={"x-queue-type": "quorum"})},
        bindings=mirror.bindings + bindings,
    )
    plan = plan_changes(desired, actual, _secrets(PASSWORDS))
    assert [(s.verb, s.kind, s.name) for s in plan.steps] == [
        (Verb.DELETE, "binding", "liaison.delivery -> liaison.audit [#]"),
        (Verb.DELETE, "binding", "liaison.replay -> liaison.audit [#]"),
        (Verb.DELETE_IF_EMPTY, "queue", audit),
    ]
    assert "rabbitmqctl delete_queue --vhost liaison liaison.audit" in plan.steps[-1].detail
    assert plan_changes(desired, mirror, _secrets(PASSWORDS)).steps == ()
