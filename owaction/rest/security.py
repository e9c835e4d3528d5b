"""Bearer-token checks for the REST views, on the shared ``TokenVerifier``."""

from __future__ import annotations

from flask import current_app, g, request

from owaction.auth import Claims, authorize, bearer_token
from owaction.errors import PermissionDenied, Unauthenticated
from owaction.logs import aaa

REALM = "owaction"


SERVICE_KEY_HEADER = "X-Service-Key"


def _service_key_claims(value: str) -> Claims:
    verifier = current_app.extensions["owaction"].verifier
    try:
        claims = verifier.verify_service_key(value)
    except Unauthenticated:
        aaa("AUTH", "check_service_key", "DENIED", path=request.path,
            request_id=g.get("request_id"))
        raise
    aaa("AUTH", "check_service_key", "SUCCESS", user=claims.service, path=request.path,
        request_id=g.get("request_id"))
    return claims


def authenticate(permission: str, *, service_key: bool = False) -> Claims:
    """The caller's claims if its token is valid and grants ``permission``; else 401 or 403.

    With ``service_key``, the router's ``X-Service-Key`` is accepted instead of a token; when
    that header is sent it must be right, and no token is then looked at.
    """
    if service_key and request.headers.get(SERVICE_KEY_HEADER) is not None:
        claims = _service_key_claims(request.headers[SERVICE_KEY_HEADER])
        g.claims = claims
        return claims
    verifier = current_app.extensions["owaction"].verifier
    raw = bearer_token(request.headers.get("Authorization"))
    try:
        claims = verifier.verify(raw)
    except Unauthenticated as exc:
        aaa("AUTH", "verify_token", "DENIED", reason=exc.code, path=request.path,
            request_id=g.get("request_id"))
        raise
    try:
        authorize(claims, permission)
    except PermissionDenied:
        aaa("AUTHZ", permission, "DENIED", user=claims.service, path=request.path,
            request_id=g.get("request_id"))
        raise
    g.claims = claims
    return claims



def www_authenticate(exc: Unauthenticated) -> str:
    """The challenge sent with a 401 (RFC 6750 §3): no error when no token was given."""
    if exc.code in ("token_missing", "invalid_api_key", "invalid_service_key"):
        return f'Bearer realm="{REALM}"'
    description = exc.message.replace("\\", "").replace('"', "'")
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'
