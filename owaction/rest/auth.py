"""``POST /api/v1/auth/token``: the token use case (``ActionService.issue_token``) over HTTP."""

from __future__ import annotations

from flask import request

from owaction.rest.api import ApiBlueprint, request_id, service
from owaction.rest.schemas import TokenReply, TokenRequest
from owaction.service import CallContext

bp = ApiBlueprint("auth", __name__, tag="auth", url_prefix="/api/v1/auth")


@bp.operation("POST", "/token", summary="Exchange an API key for a Bearer token",
              body=TokenRequest, responses={200: (TokenReply, "a signed token")},
              errors=(401, 403, 429))
def issue_token(body: TokenRequest):
    """An API key from `API_KEYS` buys a token for its own service. `MODULE_SECRET_KEY` is also
    accepted as a key, for the original module's callers; prefer a key per service and keep the
    secret for signing only. Keys are compared in constant time. A token carries the key's
    permissions (`API_KEY_PERMISSIONS`; default execute_actions and read), or fewer when asked:
    asking for more is 403."""
    ctx = CallContext(source="rest", request_id=request_id())
    issued = service().issue_token(ctx, api_key=body.api_key, service=body.service,
                                   permissions=body.permissions, address=request.remote_addr)
    return TokenReply(token=issued.token, expires_in=issued.expires_in, service=issued.service,
                      permissions=issued.permissions), 200
