"""JWT attacks against both doors of running processes: each gets 401 on REST and
UNAUTHENTICATED on gRPC, because both use the one owaction.auth.TokenVerifier.

Expired tokens, a wrong signing key and an unknown service are covered per door in
tests/rest/test_app.py and tests/rpc/test_rpcs.py; these are the attacks neither covers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import grpc
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from owaction.rpc import openwhisk_action_pb2 as pb
from tests.conftest import TEST_SECRET, module_env
from tests.rest.conftest import Gunicorn, rest_env
from tests.rest.helpers import make_token
from tests.rpc.conftest import GrpcModule, rpc_error
from tests.rpc.conftest import module_env as grpc_env

INVOKE = "/api/v1/actions/invoke"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes) -> dict:
    now = int(time.time())
    payload = {"service": "svc-a", "permissions": ["execute_actions", "read"], "iat": now,
               "exp": now + 300, **changes}
    return {k: v for k, v in payload.items() if v is not None}


def hand_signed(header: dict, payload: dict, key: bytes | None) -> str:
    """A JWT built by hand, so nothing refuses to make it: HMAC-SHA256 with ``key``, or no
    signature at all when ``key`` is None."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered(token: str, **changes) -> str:
    """The token with its payload rewritten and its original signature kept."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded.update(changes)
    return f"{header}.{b64(json.dumps(decoded).encode())}.{signature}"


def attacks() -> dict[str, tuple[str, str]]:
    """Each case's token and the error code both doors give; built when the tests run, not
    at collection, so the tokens' times are fresh."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = rsa_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    valid = make_token()
    now = int(time.time())
    router = {"service": "svc-a", "iat": now, "exp": now + 300}
    cases = [
        ("alg none", hand_signed({"alg": "none", "typ": "JWT"}, claims(), None), "token_invalid"),
        ("alg None", hand_signed({"alg": "None", "typ": "JWT"}, claims(), None), "token_invalid"),
        ("alg none keeping a real signature",
         ".".join([b64(b'{"alg":"none","typ":"JWT"}'), *valid.split(".")[1:]]), "token_invalid"),
        ("RS256 with an attacker's RSA key", jwt.encode(claims(), private_pem, algorithm="RS256"),
         "token_invalid"),
        ("HS256 keyed with an RSA public key PEM",
         hand_signed({"alg": "HS256", "typ": "JWT"}, claims(), public_pem), "token_invalid"),
        ("HS512 with the right secret", jwt.encode(claims(), TEST_SECRET, algorithm="HS512"),
         "token_invalid"),
        ("payload tampered to another service", tampered(valid, service="router_module"),
         "token_invalid"),
        ("payload tampered to a later exp", tampered(make_token(iat=now - 7200, exp=now - 3600),
                                                     exp=now + 3600), "token_invalid"),
        ("no exp", make_token(exp=None), "token_invalid"),
        ("no iat", make_token(iat=None), "token_invalid"),
        ("iat in the future", make_token(iat=now + 3600, exp=now + 7200), "token_invalid"),
        ("router-style token of a service not allowed", jwt.encode(router, TEST_SECRET),
         "service_not_allowed"),
        ("unknown service with a permissions claim", make_token(service="intruder"),
         "service_unknown"),
        # MAX_TOKEN_TTL (default a day) bounds every token, however well signed.
        ("a token living ten years", make_token(iat=now, exp=now + 10 * 365 * 86400),
         "token_invalid"),
        ("a router-style token living a hundred years",
         jwt.encode({"service": "router_module", "iat": now, "exp": now + 100 * 365 * 86400},
                    TEST_SECRET), "token_invalid"),
        ("exp as a string", jwt.encode(claims(exp=str(now + 300)), TEST_SECRET), "token_invalid"),
        ("iat as a string", jwt.encode(claims(iat=str(now)), TEST_SECRET), "token_invalid"),
        ("service as a number", jwt.encode(claims(service=7), TEST_SECRET), "token_invalid"),
        ("permissions as a string", jwt.encode(claims(permissions="read"), TEST_SECRET),
         "token_invalid"),
    ]
    return {case: (token, code) for case, token, code in cases}


CASES = list(attacks())


@pytest.fixture(scope="module")
def attack_tokens():
    return attacks()


@pytest.fixture(scope="module")
def doors(tmp_path_factory, emulator):
    """A gunicorn and a gRPC process, each on its own SQLite file."""
    rest_tmp = tmp_path_factory.mktemp("jwt-rest")
    rest = Gunicorn(rest_env(module_env(rest_tmp, emulator,
                                        f"sqlite://{rest_tmp}/owaction.sqlite",
                                        WEB_WORKERS="1")), rest_tmp)
    grpc_tmp = tmp_path_factory.mktemp("jwt-grpc")
    module = GrpcModule(grpc_tmp, grpc_env(grpc_tmp, emulator,
                                             f"sqlite://{grpc_tmp}/owaction.sqlite"))
    yield rest, module
    module.stop()
    rest.stop()


def rest_invoke(rest: Gunicorn, token: str) -> requests.Response:
    return requests.post(rest.url + INVOKE, json={"action_name": "hello"}, timeout=20,
                         headers={"Authorization": f"Bearer {token}"})


def grpc_invoke(module: GrpcModule, token: str):
    return module.call("InvokeAction", pb.InvokeActionRequest(action_name="hello"),
                       metadata=(("authorization", f"Bearer {token}"),))


def test_the_genuine_token_the_attacks_start_from_is_accepted_by_both_doors(doors):
    rest, module = doors
    token = make_token()
    assert rest_invoke(rest, token).status_code == 200
    assert grpc_invoke(module, token).success


@pytest.mark.parametrize("case", CASES)
def test_a_forged_or_unacceptable_token_gets_401_and_unauthenticated(doors, attack_tokens, case):
    rest, module = doors
    token, code = attack_tokens[case]
    reply = rest_invoke(rest, token)
    assert (reply.status_code, reply.json()["error"]["code"]) == (401, code)
    assert reply.headers["WWW-Authenticate"].startswith('Bearer realm="owaction"')
    assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]
    with pytest.raises(grpc.RpcError) as caught:
        grpc_invoke(module, token)
    status, _, trailing = rpc_error(caught)
    assert (status, trailing["error-code"]) == (grpc.StatusCode.UNAUTHENTICATED, code)
