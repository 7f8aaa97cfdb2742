"""Two replicas of vibe-coding over one database: each session's id names the replica that
holds its workspace (the gateway routes by it), and a replica that restarts finishes only its
own half-done deletions, never one another replica is carrying out on its own disk."""

from __future__ import annotations

from conftest import Caller, make_settings, next_user_id
from fastapi.testclient import TestClient

from harvis_common.replicas import owner_ordinal
from vibe_coding.app import create_app


def test_session_ids_carry_the_replica_ordinal_and_leftover_deletions_stay_with_their_replica() -> None:
    with (
        TestClient(create_app(make_settings(replica_ordinal=1))) as one,
        TestClient(create_app(make_settings(replica_ordinal=2))) as two,
    ):
        user = next_user_id()
        on_one, on_two = Caller(one, user), Caller(two, user)
        first, second = on_one.session(), on_two.session()
        assert owner_ordinal(first) == 1 and owner_ordinal(second) == 2
        # The database is shared: either replica lists both.
        listed = {s["session_id"] for s in on_two.get("/api/vibe/sessions").json()}
        assert {first, second} <= listed

        sessions_two = two.app.state.sessions  # type: ignore[attr-defined]
        sessions_one = one.app.state.sessions  # type: ignore[attr-defined]
        portal = two.portal  # type: ignore[attr-defined]
        # Both deletions stopped halfway (hidden from the owner, rows kept): replica 2 restarting
        # picks up its own and leaves replica 1's alone.
        assert portal.call(sessions_two.store.begin_delete, user, first) is not None
        assert portal.call(sessions_two.store.begin_delete, user, second) is not None
        mine = portal.call(sessions_two.store.deleting)
        assert [str(r["id"]) for r in mine] == [second]
        portal.call(sessions_two.finish_deletions)
        still = {str(r["id"]) for r in one.portal.call(sessions_one.store.deleting)}  # type: ignore[attr-defined]
        assert still == {first}
        one.portal.call(sessions_one.finish_deletions)  # type: ignore[attr-defined]
        assert one.portal.call(sessions_one.store.deleting) == []  # type: ignore[attr-defined]
