"""One id rule: organisation ids are 2-32 characters everywhere, group/role/mission ids 2-48."""

import msgspec
import pytest
from contract_helpers import example_json, validator

from liaison.directory.model import Slug
from liaison.schemas.envelope import decode_envelope
from liaison.schemas.types import Address, GroupId, MissionId, OrgId

LENGTHS = range(1, 52)


def _accepts(kind: object, value: str) -> bool:
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError:
        return False
    return True


@pytest.mark.parametrize("n", LENGTHS)
def test_organisation_ids_are_2_to_32_everywhere(n: int) -> None:
    """Sender, `org:` address, ack.ref_sender: the same lengths in msgspec and the JSON Schema."""
    org = "o" * n
    valid = 2 <= n <= 32
    assert _accepts(OrgId, org) is valid
    assert _accepts(Address, f"org:{org}") is valid
    for field, value in (("sender", org), ("recipients", [f"org:{org}"])):
        doc = {**example_json("ack"), field: value}
        assert validator("envelope").is_valid(doc) is valid, (field, n)
    ack = example_json("ack")
    ack["body"]["ref_sender"] = org
    assert validator("envelope").is_valid(ack) is valid


@pytest.mark.parametrize("n", LENGTHS)
def test_group_role_and_mission_ids_are_2_to_48_everywhere(n: int) -> None:
    """Directory names, addresses and the ids bodies carry accept the same lengths."""
    name = "g" * n
    valid = 2 <= n <= 48
    assert _accepts(Slug, name) is valid
    assert _accepts(GroupId, name) is valid
    assert _accepts(MissionId, name) is valid
    for kind in ("group", "role", "mission"):
        assert _accepts(Address, f"{kind}:{name}") is valid
        doc = {**example_json("ack"), "recipients": [f"{kind}:{name}"]}
        assert validator("envelope").is_valid(doc) is valid


def test_org_address_longer_than_an_org_id_is_invalid_not_unknown() -> None:
    """`org:` + 33 characters breaks the contract (code 300), it is not an unknown recipient."""
    doc = {**example_json("ack"), "recipients": ["org:" + "o" * 33]}
    with pytest.raises(msgspec.ValidationError, match=r"\$\.recipients\[0\]"):
        decode_envelope(msgspec.json.encode(doc))
