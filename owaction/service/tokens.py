"""The token use case: an API key buys a Bearer token carrying at most the key's permissions."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from owaction.auth import TokenVerifier
from owaction.errors import PermissionDenied, Unauthenticated
from owaction.logs import aaa
from owaction.service.context import CallContext
from owaction.service.core import ServiceCore


@dataclass(frozen=True)
class IssuedToken:
    """A signed token and what it carries."""

    token: str
    expires_in: int
    service: str
    permissions: list[str]


class Tokens(ServiceCore):
    """Keys come from ``API_KEYS``; ``MODULE_SECRET_KEY`` also counts, for the original module."""

    @functools.cached_property
    def verifier(self) -> TokenVerifier:
        return TokenVerifier(self.settings)

    def issue_token(self, ctx: CallContext, *, api_key: str, service: str,
                    permissions: Sequence[str] | None = None,
                    address: str | None = None) -> IssuedToken:
        """A token for ``service`` when ``api_key`` is its key, with ``permissions`` (default:
        all the key carries); asking for more is PermissionDenied. Keys are compared in
        constant time, and guesses are rate limited per client address."""
        if self.rate_limiter is not None:
            self.rate_limiter.check_token_request(address or "-")
        verifier = self.verifier
        named = verifier.service_for_api_key(api_key, service)
        if named is None:
            aaa("AUTH", "issue_token", "DENIED", user=service, address=address,
                request_id=ctx.request_id)
            raise Unauthenticated("the API key is not valid for this service",
                                  code="invalid_api_key")
        granted = verifier.permissions_for_key(named)
        wanted = list(permissions) if permissions else list(granted)
        beyond = sorted(set(wanted) - set(granted))
        if beyond:
            aaa("AUTHZ", "issue_token", "DENIED", user=named, permission=",".join(beyond),
                request_id=ctx.request_id)
            raise PermissionDenied(f"the API key of {named!r} does not carry "
                                   f"{', '.join(beyond)}")
        token, lifetime = verifier.issue(named, sorted(set(wanted)))
        aaa("AUTH", "issue_token", "SUCCESS", user=named, permissions=",".join(wanted),
            request_id=ctx.request_id)
        return IssuedToken(token=token, expires_in=lifetime, service=named,
                           permissions=sorted(set(wanted)))
