"""``POST /api/v1/auth/token``: an API key for a Bearer token.

Keys come from ``API_KEYS`` (service=key pairs). ``MODULE_SECRET_KEY`` is also accepted as a key,
for compatibility with the original module, whose callers exchange the secret for tokens; new
deployments should give each service its own key and keep the secret for signing only. Every
comparison is constant-time (``TokenVerifier.service_for_api_key``).
"""

from __future__ import annotations

from flask import current_app, request

from owaction.errors import PermissionDenied, Unauthenticated
from owaction.logs import aaa
from owaction.rest.api import ApiBlueprint, request_id
from owaction.rest.schemas import TokenReply, TokenRequest

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
    state = current_app.extensions["owaction"]
    limiter = getattr(state.service, "rate_limiter", None)
    if limiter is not None:
        # Per client address, so guessing keys costs real time.
        limiter.check_token_request(request.remote_addr or "-")
    verifier = state.verifier
    service = verifier.service_for_api_key(body.api_key, body.service)
    if service is None:
        aaa("AUTH", "issue_token", "DENIED", user=body.service, address=request.remote_addr,
            request_id=request_id())
        raise Unauthenticated("the API key is not valid for this service", code="invalid_api_key")
    granted = verifier.permissions_for_key(service)
    permissions = list(body.permissions) if body.permissions else list(granted)
    beyond = sorted(set(permissions) - set(granted))
    if beyond:
        aaa("AUTHZ", "issue_token", "DENIED", user=service, permission=",".join(beyond),
            request_id=request_id())
        raise PermissionDenied(f"the API key of {service!r} does not carry "
                               f"{', '.join(beyond)}")
    token, lifetime = verifier.issue(service, sorted(set(permissions)))
    aaa("AUTH", "issue_token", "SUCCESS", user=service, permissions=",".join(permissions),
        request_id=request_id())
    return TokenReply(token=token, expires_in=lifetime, service=service,
                      permissions=sorted(set(permissions))), 200
