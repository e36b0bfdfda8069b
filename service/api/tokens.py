"""Self-service tokens: make one (a subset of your roles, always expiring), list yours,
revoke one (``service.tokens`` holds the rules)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi import Path as FastAPIPath
from pydantic import BaseModel, ConfigDict, Field

from envyard.service import tokens
from envyard.service.api.deps import DbDep, PrincipalDep, SettingsDep
from envyard.service.api.schemas import TokenCreated, TokenList, TokenRevoked
from envyard.service.auth import Principal
from envyard.service.models import Role, Token, as_utc

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


class TokenIn(BaseModel):
    """What a new token should be; the lifetime's bounds and an empty role set are
    refused by ``tokens.issue``, whose messages name the setting."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="What it is for, e.g. ci.")
    roles: dict[str, Literal["viewer", "developer", "admin"]] = Field(
        max_length=64, description="Namespace ('*': every one) -> role; each no higher "
        "than yours there.")
    expires_in_days: float | None = Field(
        None, allow_inf_nan=False, description="Lifetime in days, more than 0 and at most "
        "the token_max_days setting (and never past the expiry of the token making it); "
        "default: that most.")


def _shown(token: Token, who: Principal) -> dict[str, Any]:
    return {"id": token.id, "name": token.name,
            "roles": {r.namespace: r.role for r in sorted(token.roles,
                                                          key=lambda r: r.namespace)},
            "created_at": as_utc(token.created_at),
            "expires_at": as_utc(token.expires_at) if token.expires_at else None,
            "current": token.id == who.token_id}


@router.post("", status_code=201, response_model=TokenCreated)
def create_token(body: TokenIn, db: DbDep, who: PrincipalDep,
                 settings: SettingsDep) -> dict[str, Any]:
    """A new token for you holding some of your roles; its secret is in this answer only.
    A browser logged in by cookie sends X-CSRF-Token, as with every write."""
    with db.session(write=True) as s:
        token, secret = tokens.issue(s, who, name=body.name,
                                     roles={ns: Role(r) for ns, r in body.roles.items()},
                                     days=body.expires_in_days,
                                     max_days=settings.token_max_days)
        return {**_shown(token, who), "token": secret}


@router.get("", response_model=TokenList)
def list_tokens(db: DbDep, who: PrincipalDep) -> dict[str, Any]:
    """Your tokens: made by you or by any of your tokens (never a secret)."""
    with db.session() as s:
        return {"tokens": [_shown(t, who) for t in tokens.own_tokens(s, who)]}


TokenId = Annotated[int, FastAPIPath(ge=1, le=2**31 - 1, description="The token's id.")]


@router.delete("/{token_id}", response_model=TokenRevoked)
def revoke_token(token_id: TokenId, request: Request, db: DbDep,
                 who: PrincipalDep) -> dict[str, Any]:
    """Revoke one of your tokens (someone else's is 404, like an id that does not exist).
    It stops working at once in this process; another replica of the service may accept
    it for up to 10 s more (its token cache)."""
    with db.session(write=True) as s:
        ids = tokens.revoke(s, who, token_id)
    request.app.state.tokens.forget(ids)
    return {"revoked": ids}
