"""Tokens, API keys and permissions: one verifier for the REST and gRPC doors.

Tokens are HS256 JWTs signed with ``MODULE_SECRET_KEY``. The accepted algorithm is fixed here and
never read from the token's header, so ``alg: none`` and HS/RS confusion cannot work. ``exp`` and
``iat`` are required; ``iat`` in the future is refused; leeway is small.

Two shapes are accepted:

* tokens this module issues: ``{service, permissions, iat, exp}``, for a known service
  (``ALLOWED_SERVICES`` or a name in ``API_KEYS``);
* tokens WaddleBot's router mints: ``{service, iat, exp}`` with no ``permissions``; accepted when
  the service is in ``ALLOWED_SERVICES``, which grants ``execute_actions`` and ``read``.

``manage`` (creating, changing and deleting OpenWhisk entities) is never implied: the router's
tokens and its service key lack it, and an API key carries it only when ``API_KEY_PERMISSIONS``
lists it for the key's service.

``MODULE_SECRET_KEY`` itself is still accepted as an API key by the token endpoint, because the
original module's callers exchange it for tokens; new deployments should give each service its own
key in ``API_KEYS`` and keep the secret for signing only.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

import jwt

from owaction.config import Settings
from owaction.errors import PermissionDenied, Unauthenticated

ALGORITHM = "HS256"
LEEWAY_SECONDS = 10
PERMISSION_EXECUTE = "execute_actions"
PERMISSION_READ = "read"
PERMISSION_MANAGE = "manage"
ALL_PERMISSIONS = (PERMISSION_EXECUTE, PERMISSION_READ, PERMISSION_MANAGE)
# What a caller gets unless it is granted more: the router, and API keys not listed otherwise.
DEFAULT_PERMISSIONS = (PERMISSION_EXECUTE, PERMISSION_READ)
VERIFIED_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Claims:
    service: str
    permissions: frozenset[str]
    issued_at: int
    expires_at: int
    router_style: bool = False

    def allows(self, permission: str) -> bool:
        return permission in self.permissions


class TokenVerifier:
    """Verifies tokens and API keys against one Settings."""

    def __init__(self, settings: Settings):
        self._secret = settings.module_secret_key
        self._allowed_services = frozenset(settings.allowed_services)
        self._api_keys = tuple(settings.api_keys)
        self._known_services = self._allowed_services | {name for name, _ in self._api_keys}
        self._service_key = settings.service_key
        self._key_permissions = {service: tuple(perms.split("+"))
                                 for service, perms in settings.api_key_permissions}
        # The router is the first allowed service; the holder of SERVICE_KEY acts as it.
        self.router_service = settings.allowed_services[0] if settings.allowed_services else None
        self.default_service = self.router_service or next(
            (name for name, _ in self._api_keys), None)
        self._ttl = settings.token_ttl
        self._max_ttl = settings.max_token_ttl
        self._verified: dict[str, Claims] = {}

    # --- tokens ---------------------------------------------------------------------------

    def issue(
        self, service: str, permissions: tuple[str, ...] | list[str] | None = None,
        *, ttl: int | None = None, now: float | None = None,
    ) -> tuple[str, int]:
        """A signed token for ``service`` and how many seconds it lives."""
        issued = int(now if now is not None else time.time())
        lifetime = int(ttl if ttl is not None else self._ttl)
        if not 0 < lifetime <= self._max_ttl:
            raise ValueError(f"a token lifetime must be between 1 and MAX_TOKEN_TTL "
                             f"({self._max_ttl}) seconds, not {lifetime}")
        perms = list(permissions) if permissions is not None else list(DEFAULT_PERMISSIONS)
        unknown = set(perms) - set(ALL_PERMISSIONS)
        if unknown:
            raise ValueError(f"unknown permissions: {', '.join(sorted(unknown))}")
        payload = {
            "service": service, "permissions": perms, "iat": issued, "exp": issued + lifetime,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), lifetime

    def warm_up(self) -> None:
        """Sign and check one throwaway token at a process's start, as the first call would.

        A gunicorn worker is forked from a master that has imported PyJWT and cryptography, and
        fork does not carry over the master's mappings of their code: the first signature check
        faults in about 4 MB of it. Done here, that counts in the idle worker and the first call
        is not slower than the next."""
        now = int(time.time())
        token = jwt.encode({"iat": now, "exp": now + 60}, self._secret, algorithm=ALGORITHM)
        jwt.decode(token, self._secret, algorithms=[ALGORITHM])

    def verify(self, raw: str | None) -> Claims:
        """Claims of a valid token, or Unauthenticated saying why not.

        A token verified before is answered from a small cache until it expires: callers such
        as the router reuse one token for an hour, and checking the signature again each time
        would cost every request the same work for the same answer.
        """
        if not raw:
            raise Unauthenticated("a Bearer token is required", code="token_missing")
        cached = self._verified.get(raw)
        if cached is not None and cached.expires_at > time.time():
            return cached
        claims = self._verify(raw)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[raw] = claims
        return claims

    def _verify(self, raw: str) -> Claims:
        try:
            payload = jwt.decode(
                raw,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat"], "verify_iat": True},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", code="token_expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet", code="token_invalid") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is invalid: {exc}", code="token_invalid") from None
        # PyJWT coerces numeric strings ("exp": "9999999999"); a claim of the wrong type is an
        # invalid token, not a lenient one.
        iat, exp = payload.get("iat"), payload.get("exp")
        if not (_numeric_date(iat) and _numeric_date(exp)):
            raise Unauthenticated("the token's iat and exp must be numbers",
                                  code="token_invalid")
        if iat > time.time() + LEEWAY_SECONDS:
            raise Unauthenticated("the token is not valid yet", code="token_invalid")
        if exp - iat > self._max_ttl:
            raise Unauthenticated(
                f"the token lives longer than the {self._max_ttl} s this module accepts",
                code="token_invalid")
        service = payload.get("service")
        if not isinstance(service, str) or not service:
            raise Unauthenticated("the token names no service", code="token_invalid")
        if "permissions" not in payload:
            # The router's own shape: trusted only for the services the operator allows.
            if service not in self._allowed_services:
                raise Unauthenticated(
                    f"service {service!r} is not allowed", code="service_not_allowed"
                )
            permissions = frozenset(DEFAULT_PERMISSIONS)
            router_style = True
        else:
            perms = payload["permissions"]
            if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
                raise Unauthenticated("the token's permissions are malformed", code="token_invalid")
            if service not in self._known_services:
                raise Unauthenticated(f"service {service!r} is not known", code="service_unknown")
            permissions = frozenset(perms)
            router_style = False
        return Claims(
            service=service,
            permissions=permissions,
            issued_at=int(iat),
            expires_at=int(payload["exp"]),
            router_style=router_style,
        )

    # --- keys -----------------------------------------------------------------------------

    def service_for_api_key(self, api_key: str, requested_service: str | None = None) -> str | None:
        """The service an API key belongs to, or None. Every comparison is constant-time and
        every key is compared, so the time taken says nothing about which key nearly matched."""
        if not isinstance(api_key, str) or not api_key:
            return None
        given = api_key.encode()
        matched: str | None = None
        for name, key in self._api_keys:
            if hmac.compare_digest(given, key.encode()) and matched is None:
                matched = name
        secret_matches = hmac.compare_digest(given, self._secret.encode())
        if matched is not None:
            if requested_service and requested_service != matched:
                return None
            return matched
        if secret_matches:
            # Compatibility with the original module: the signing secret works as a key for
            # any service this module knows.
            service = requested_service or self.default_service
            if service and service in self._known_services:
                return service
        return None

    def permissions_for_key(self, service: str) -> tuple[str, ...]:
        """What tokens bought with ``service``'s API key may carry (API_KEY_PERMISSIONS)."""
        return self._key_permissions.get(service, DEFAULT_PERMISSIONS)

    def check_service_key(self, value: str | None) -> bool:
        """The router's X-Service-Key, compared in constant time; False when none is set."""
        if not self._service_key or not value:
            return False
        return hmac.compare_digest(value.encode(), self._service_key.encode())

    def verify_service_key(self, value: str | None) -> Claims:
        """Claims for the router when ``value`` is its service key, else Unauthenticated.

        The router gets the default permissions (never ``manage``), under the same service name
        its own tokens carry, so its calls are one caller whichever door and credential they
        use."""
        if not self.check_service_key(value) or not self.router_service:
            raise Unauthenticated("the service key is not valid", code="invalid_service_key")
        now = int(time.time())
        return Claims(service=self.router_service, permissions=frozenset(DEFAULT_PERMISSIONS),
                      issued_at=now, expires_at=now, router_style=True)


def _numeric_date(value: object) -> bool:
    """A JWT NumericDate: a JSON number (bool is an int in Python, but not in JSON)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def authorize(claims: Claims, permission: str) -> None:
    if not claims.allows(permission):
        raise PermissionDenied(
            f"service {claims.service!r} lacks the {permission!r} permission",
        )


def bearer_token(header_value: str | None) -> str | None:
    """The token from an ``Authorization: Bearer <token>`` value, or None."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
