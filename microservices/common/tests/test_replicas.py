"""Session ids that carry their replica's ordinal (harvis_common.replicas)."""

from __future__ import annotations

import uuid

import pytest

from harvis_common.replicas import MAX_ORDINAL, mint_session_id, owner_ordinal


@pytest.mark.parametrize("ordinal", [0, 1, 7, 255, MAX_ORDINAL])
def test_a_minted_id_is_a_uuidv8_that_names_its_replica(ordinal: int) -> None:
    sid = mint_session_id(ordinal)
    parsed = uuid.UUID(sid)
    assert str(parsed) == sid  # canonical lower-case form, as the services return ids
    assert parsed.version == 8 and parsed.variant == uuid.RFC_4122
    assert owner_ordinal(sid) == ordinal
    assert owner_ordinal(sid.upper()) == ordinal


def test_ids_are_unguessable() -> None:
    ids = {mint_session_id(3) for _ in range(2000)}
    assert len(ids) == 2000
    # 110 random bits: every random hex digit position takes many values.
    random_positions = [i for i in range(36) if i not in (8, 13, 14, 15, 16, 17, 18, 19, 23)]
    for i in random_positions:
        assert len({s[i] for s in ids}) >= 12, i


def test_ids_without_an_ordinal_belong_to_replica_zero() -> None:
    assert owner_ordinal(str(uuid.uuid4())) == 0  # minted before replicas
    assert owner_ordinal(str(uuid.uuid1())) == 0


@pytest.mark.parametrize(
    "raw", ["", "abc", "../../etc/passwd", "1" * 36, "g" * 8 + "-" + "0" * 27, "{" + "0" * 34 + "}"]
)
def test_what_is_not_a_uuid_has_no_owner(raw: str) -> None:
    assert owner_ordinal(raw) is None


@pytest.mark.parametrize("ordinal", [-1, MAX_ORDINAL + 1])
def test_an_ordinal_out_of_range_is_refused(ordinal: int) -> None:
    with pytest.raises(ValueError):
        mint_session_id(ordinal)
