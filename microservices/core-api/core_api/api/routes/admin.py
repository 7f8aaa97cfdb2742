"""`/api/admin/users…`: administrators list, disable, re-enable, promote, demote and delete
accounts. (`/api/admin/health` is in health.py, with the public fleet health.)

A change made here counts on this replica at once (the user's cached state is
dropped) and on the others within USER_STATE_CACHE_S. An administrator cannot
disable, demote or delete their own account: that is how the last admin locks
everyone out; the CLI can still do it from the server.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from ...query_bounds import Offset, UserId
from ...store import users
from ..body_limit import BoundedBodyRoute
from ..deps import Admin, Service
from ..schemas import UserUpdate

log = logging.getLogger("harvis.admin")

router = APIRouter(prefix="/api/admin", tags=["admin"], route_class=BoundedBodyRoute)

NOT_FOUND = "User not found"
NOT_YOURSELF = "You cannot disable, demote or delete your own account; another administrator (or the CLI) can"


@router.get("/users", responses={401: {}, 403: {}})
async def list_users(
    _: Admin, auth: Service, limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Offset = 0
) -> dict[str, Any]:
    found, total = await users.page(auth.pool, limit, offset)
    return {"users": [u.for_admin() for u in found], "total": total, "limit": limit, "offset": offset}


@router.patch("/users/{user_id}", responses={401: {}, 403: {}, 404: {}, 409: {}})
async def update_user(user_id: UserId, body: UserUpdate, admin: Admin, auth: Service) -> dict[str, Any]:
    if user_id == admin.id and False in (body.is_active, body.is_admin):
        raise HTTPException(409, NOT_YOURSELF)
    user = await users.update(auth.pool, user_id, is_admin=body.is_admin, is_active=body.is_active)
    if user is None:
        raise HTTPException(404, NOT_FOUND)
    auth.user_states.forget(user_id)
    log.info(
        "account changed by an administrator",
        extra={"admin_id": admin.id, "user_id": user_id, "is_active": user.is_active, "is_admin": user.is_admin},
    )
    return user.for_admin()


@router.delete("/users/{user_id}", responses={401: {}, 403: {}, 404: {}, 409: {}})
async def delete_user(user_id: UserId, admin: Admin, auth: Service) -> dict[str, Any]:
    if user_id == admin.id:
        raise HTTPException(409, NOT_YOURSELF)
    if not await users.delete(auth.pool, user_id):
        raise HTTPException(404, NOT_FOUND)
    auth.user_states.forget(user_id)
    log.info("account deleted by an administrator", extra={"admin_id": admin.id, "user_id": user_id})
    return {"deleted": True, "id": user_id}
