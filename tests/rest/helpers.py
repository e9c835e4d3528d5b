"""Calling the REST API in tests, with every response checked against /openapi.json."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from jsonschema import Draft202012Validator

from tests.conftest import TEST_SECRET


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any

    @property
    def error_code(self) -> str | None:
        err = self.body.get("error") if isinstance(self.body, dict) else None
        return err.get("code") if isinstance(err, dict) else None


class OpenApiCheck:
    """Validates a reply against the response schema the document gives for its path, method
    and status; fails when the status is not documented there."""

    def __init__(self, document: dict):
        self.document = document
        self._paths = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", ".+", re.escape(path)) + "$"), path)
            # Fewest parameters first, then the longest, so /rules/{name}/enable wins over
            # /rules/{name} (whose parameter may hold slashes).
            for path in sorted(document["paths"], key=lambda p: (p.count("{"), -len(p)))
        ]

    def template(self, path: str) -> str | None:
        for pattern, template in self._paths:
            if pattern.match(path):
                return template
        return None

    def schema(self, method: str, path: str, status: int) -> dict:
        template = self.template(path)
        if template is None or method.lower() not in self.document["paths"][template]:
            # Unknown routes and methods still answer with the error body.
            assert status in (404, 405), f"{method} {path} is not documented but got {status}"
            return {"$ref": "#/components/schemas/ErrorBody"}
        responses = self.document["paths"][template][method.lower()]["responses"]
        assert str(status) in responses, (
            f"{method} {template} answered {status}, which the document does not list "
            f"(it lists {', '.join(responses)})"
        )
        return responses[str(status)]["content"]["application/json"]["schema"]

    def __call__(self, method: str, path: str, reply: Reply) -> None:
        schema = {**self.schema(method, path, reply.status),
                  "components": self.document["components"]}
        errors = sorted(Draft202012Validator(schema).iter_errors(reply.body), key=str)
        assert not errors, f"{method} {path} {reply.status}: {errors[0].message} in {reply.body}"
        assert reply.headers.get("X-Request-ID"), "every response carries X-Request-ID"
        if reply.status in (429, 503):
            assert reply.headers.get("Retry-After", "").isdigit()
        if reply.status == 401:
            assert reply.headers.get("WWW-Authenticate", "").startswith('Bearer realm="owaction"')


def make_token(claims: dict | None = None, *, secret: str = TEST_SECRET, **changes) -> str:
    """A token signed like the module's: by default svc-a with every permission, 5 min."""
    now = int(time.time())
    payload = {"service": "svc-a", "permissions": ["execute_actions", "read"], "iat": now,
               "exp": now + 300}
    payload.update(claims or {})
    payload.update(changes)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, secret, algorithm="HS256")


def router_token(service: str = "router_module") -> str:
    """A token shaped like WaddleBot's router mints: no permissions claim."""
    now = int(time.time())
    return jwt.encode({"service": service, "iat": now, "exp": now + 3600}, TEST_SECRET,
                      algorithm="HS256")


class HttpApi:
    """A real HTTP client of a running server."""

    def __init__(self, base_url: str, *, token: str | None = None):
        self.base_url = base_url
        self.token = token
        self.session = requests.Session()
        document = requests.get(base_url + "/openapi.json", timeout=10).json()
        self.check = OpenApiCheck(document)

    def headers(self, token: str | None | bool, headers: dict | None) -> dict:
        """``token=True``: this client's token; a string: that one; None or "": none."""
        headers = dict(headers or {})
        bearer = self.token if token is True else token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        return headers

    def request(self, method: str, path: str, *, token: str | None | bool = True,
                headers: dict | None = None, timeout: float = 30, **kw) -> Reply:
        headers = self.headers(token, headers)
        r = self.session.request(method, self.base_url + path, headers=headers,
                                 timeout=timeout, **kw)
        reply = Reply(r.status_code, r.headers, r.json())
        self.check(method, path.split("?")[0], reply)
        return reply

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw) -> Reply:
        if body is not None:
            kw["json"] = body
        return self.request("POST", path, **kw)


class FlaskApi(HttpApi):
    """The same calls through Flask's test client, in-process."""

    def __init__(self, app, *, token: str | None = None):
        self.client = app.test_client()
        self.token = token
        self.check = OpenApiCheck(self.client.get("/openapi.json").get_json())

    def request(self, method: str, path: str, *, token: str | None | bool = True,
                headers: dict | None = None, timeout: float = 30, **kw) -> Reply:
        headers = self.headers(token, headers)
        if "params" in kw:
            kw["query_string"] = kw.pop("params")
        r = self.client.open(path, method=method, headers=headers, **kw)
        reply = Reply(r.status_code, r.headers, r.get_json())
        self.check(method, path.split("?")[0], reply)
        return reply
