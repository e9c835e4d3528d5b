"""OpenWhisk entity names: the controller's rule, checked before any request leaves.

EntityPath.scala: 1-256 characters, first alphanumeric or ``_``, then alphanumerics, ``_``, ``@``,
space, ``.``, ``&``, ``-``, and the last not a space. ``_`` alone as a namespace means "mine".
"""

from __future__ import annotations

import re
from urllib.parse import quote

MAX_NAME_LENGTH = 256
# Written for Python, pydantic and ECMA-262 alike, so the OpenAPI document states these rules as
# they are checked (always with fullmatch, so no trailing newline slips past the ``$``).
_NAME = r"([A-Za-z0-9_]|[A-Za-z0-9_][A-Za-z0-9_@ .&-]{0,254}[A-Za-z0-9_@.&-])"
NAME_PATTERN = f"^{_NAME}$"
QUALIFIED_NAME_PATTERN = f"^({_NAME}/)?{_NAME}$"  # action or package/action
ACTIVATION_ID_PATTERN = r"^[0-9a-f]{32}$"
_NAME_RE = re.compile(NAME_PATTERN)
ACTIVATION_ID_RE = re.compile(ACTIVATION_ID_PATTERN)


class InvalidName(ValueError):
    """A name OpenWhisk would refuse with 400; raised before any request is made."""


def check_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{what} must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"{what} is longer than allowed: {len(name)} > {MAX_NAME_LENGTH}")
    if not _NAME_RE.fullmatch(name):
        raise InvalidName(f"{what} {name!r} contains illegal characters")
    return name


def check_namespace(namespace: str) -> str:
    if namespace == "_":
        return namespace
    return check_name(namespace, "namespace")


def split_action(qualified: str) -> tuple[str | None, str]:
    """``pkg/action`` or ``action`` into (package, action), each checked.

    A leading ``/ns/`` is not accepted here: the namespace travels separately.
    """
    if not isinstance(qualified, str) or not qualified:
        raise InvalidName("action name must be a non-empty string")
    parts = qualified.split("/")
    if len(parts) == 1:
        return None, check_name(parts[0], "action name")
    if len(parts) == 2:
        return check_name(parts[0], "package name"), check_name(parts[1], "action name")
    raise InvalidName(f"action name {qualified!r} has too many parts: use package/action")


SYSTEM_NAMESPACE = "whisk.system"


def split_qualified(path: str, what: str = "name") -> tuple[str | None, str]:
    """``/ns/[pkg/]name`` into (ns, ``[pkg/]name``); a path without a leading ``/`` has no ns."""
    if not isinstance(path, str) or not path:
        raise InvalidName(f"{what} must be a non-empty string")
    if not path.startswith("/"):
        package, name = split_action(path)
        return None, f"{package}/{name}" if package else name
    namespace, sep, rest = path[1:].partition("/")
    if not sep:
        raise InvalidName(f"{what} {path!r} must be /namespace/[package/]name")
    package, name = split_action(rest)
    return check_namespace(namespace), f"{package}/{name}" if package else name


def split_system_path(path: str) -> tuple[str, str]:
    """``/whisk.system/pkg/action`` into its namespace and ``pkg/action``; any other namespace
    is refused, because only system actions are given a namespace key."""
    namespace, action = split_qualified(path, "feed")
    if namespace != SYSTEM_NAMESPACE:
        raise InvalidName(f"feed {path!r} must be an action of /{SYSTEM_NAMESPACE}")
    return namespace, action


def check_activation_id(activation_id: str) -> str:
    if not isinstance(activation_id, str) or not ACTIVATION_ID_RE.fullmatch(activation_id):
        raise InvalidName("activation id must be 32 lowercase hex characters")
    return activation_id


def path_segment(name: str) -> str:
    """Percent-encode one checked segment, so it can never become two segments."""
    return quote(name, safe="")
