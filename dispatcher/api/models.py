"""``/v1/models``: the model groups the caller's key may use, as OpenAI's Model objects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from dispatcher.api.auth import Caller, authenticated
from dispatcher.api.errors import ApiError

router = APIRouter(prefix="/v1/models", tags=["models"])

OWNED_BY = "llm-dispatcher"


def _visible_groups(request: Request, caller: Caller) -> list[str]:
    groups = request.app.state.client.deployments.groups
    return groups if caller.key is None else caller.key.allowed_groups(groups)


def _model_object(group: str, created: int) -> dict[str, Any]:
    return {"id": group, "object": "model", "created": created, "owned_by": OWNED_BY}


@router.get("")
async def list_models(request: Request, caller: Caller = Depends(authenticated)) -> dict[str, Any]:
    created = request.app.state.started_at
    return {"object": "list", "data": [_model_object(group, created) for group in _visible_groups(request, caller)]}


@router.get("/{model}")
async def retrieve_model(model: str, request: Request, caller: Caller = Depends(authenticated)) -> dict[str, Any]:
    if model not in _visible_groups(request, caller):
        raise ApiError(404, f"the model group '{model[:200]}' does not exist or this key may not use it",
                       param="model", code="model_not_found")
    return _model_object(model, request.app.state.started_at)
