"""What a web action call may carry to satisfy the action's ``require-whisk-auth`` annotation.

A web action runs code of its own and sees every request header (BEHAVIOUR.md section 6), so
the module sends it no credentials by default. OpenWhisk checks the annotation so
(WebActions.scala ``confirmAuthenticated``): a string or number must equal the request's
``X-Require-Whisk-Auth`` header; ``true`` needs valid Basic credentials of any identity;
``false`` or absent checks nothing. So an action with a secret gets that secret from the
operator's configuration, and only actions the operator names get the namespace key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

REQUIRE_WHISK_AUTH = "X-Require-Whisk-Auth"


def target(namespace: str, package: str, action: str) -> str:
    """How a web action is named in the configuration: ``namespace/package/action``."""
    return f"{namespace}/{package}/{action}"


def qualify(name: str, namespace: str) -> str:
    """A configured ``package/action`` (or ``package/*``) in ``namespace``; a name with three
    segments already has its namespace."""
    return name if name.count("/") == 2 else f"{namespace}/{name}"


@dataclass(frozen=True)
class WebActionAuth:
    """Per-action (or per-package, ``pkg/*``) secrets and the actions allowed the key."""

    secrets: Mapping[str, str] = field(default_factory=dict)
    key_allowed: frozenset[str] = frozenset()

    @classmethod
    def build(cls, namespace: str, secrets: Iterable[tuple[str, str]] = (),
              key_allowed: Iterable[str] = ()) -> WebActionAuth:
        return cls({qualify(name, namespace): value for name, value in secrets},
                   frozenset(qualify(name, namespace) for name in key_allowed))

    @staticmethod
    def _match(names: Mapping[str, str] | frozenset[str], namespace: str, package: str,
               action: str) -> str | None:
        for name in (target(namespace, package, action), target(namespace, package, "*")):
            if name in names:
                return name
        return None

    def secret_for(self, namespace: str, package: str, action: str) -> str | None:
        """The ``X-Require-Whisk-Auth`` value configured for this action, if any."""
        name = self._match(self.secrets, namespace, package, action)
        return None if name is None else self.secrets[name]

    def may_send_key(self, namespace: str, package: str, action: str) -> bool:
        """Whether the operator allowed this action the namespace key (``require-whisk-auth:
        true``); the action's code can read it."""
        return self._match(self.key_allowed, namespace, package, action) is not None
