"""GET /v1/usage?key=<name>: a key's spend and remaining budget, for the admin key only."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ai_router.access.keys import presented_key
from ai_router.access.store import Limits
from ai_router.errors import InvalidRequest, NotFound, Unauthenticated
from ai_router.http_api.response_model import ResponseModel
from ai_router.http_api.state import router

blueprint = Blueprint("usage_api", __name__, url_prefix="/v1")


class KeyUsage(ResponseModel):
    """A key's spend in its current budget period (times in seconds since the epoch)."""

    key: str
    spent_usd: float
    reserved_usd: float  # held by requests in flight
    budget_usd: float | None  # null: the key has no budget
    remaining_usd: float | None
    period_start: float
    period_end: float


@blueprint.get("/usage")
def usage() -> Response:
    gate = router().gate
    presented = presented_key(request.headers.get("Authorization"), request.headers.get("x-api-key"))
    if not gate.keyring.is_admin(presented):
        raise Unauthenticated(
            "GET /v1/usage needs the admin key (the variable named by auth.admin_key_env), as "
            "`Authorization: Bearer <key>`"
        )
    name = request.args.get("key", "")
    if not name:
        raise InvalidRequest("name the key: GET /v1/usage?key=<name>", param="key")
    key = next((k for k in router().settings.auth.keys if k.name == name), None)
    if key is None:
        # Not echoed: an admin may have typed a key's value where its name belongs.
        raise NotFound("no key in auth.keys has that name", param="key")
    spend = gate.store.spend(Limits.of(key))
    budget = key.budget_usd
    return jsonify(
        KeyUsage(
            key=name,
            spent_usd=round(spend.spent, 10),
            reserved_usd=round(spend.reserved, 10),
            budget_usd=budget,
            remaining_usd=None if budget is None else round(budget - spend.spent - spend.reserved, 10),
            period_start=spend.period_start,
            period_end=spend.period_end,
        ).to_json()
    )
