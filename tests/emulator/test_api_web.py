"""Web actions: extensions, methods, __ow_* parameters, raw HTTP, auth and errors."""

from __future__ import annotations

import base64

import pytest
import requests

from tests.emulator.conftest import put_action

ECHO = "def main(args):\n    return args\n"


def web(emu, path, method="GET", **kw):
    kw.setdefault("timeout", 30)
    return requests.request(method, f"{emu.url}/api/v1/web/guest/{path}", **kw)


@pytest.fixture
def web_echo(emu, uname):
    """An exported action returning its arguments (under the echoed .json result)."""
    name = uname("webecho")
    put_action(emu, name, ECHO, annotations=[{"key": "web-export", "value": True}])
    return name


def test_json_extension_returns_the_result(emu):
    r = web(emu, "default/webhello.json", params={"name": "Web"})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"message": "Hello Web"}
    assert len(r.headers["x-openwhisk-activation-id"]) == 32


def test_http_result_sets_status_headers_and_body(emu):
    for path in ("default/webpage", "default/webpage.http"):
        r = web(emu, path)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "text/html"
        assert r.text == "<h1>Hello</h1>"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_every_method_reaches_the_action_as_ow_method(emu, web_echo, method):
    r = web(emu, f"default/{web_echo}.json", method, params={"q": "1"},
            headers={"X-Custom": "yes"})
    assert r.status_code == 200
    args = r.json()
    assert args["__ow_method"] == method.lower()
    assert args["__ow_path"] == ""
    assert args["__ow_headers"]["x-custom"] == "yes"
    assert args["q"] == "1"
    assert "__ow_user" not in args


def test_http_extension_passes_the_rest_of_the_path_as_ow_path(emu, uname):
    name = uname("pathy")
    put_action(emu, name, "def main(args):\n    return {'body': {'path': args['__ow_path']}}\n",
               annotations=[{"key": "web-export", "value": True}])
    r = web(emu, f"default/{name}.http/some/path")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"path": "/some/path"}


def test_head_answers_without_a_body(emu):
    r = web(emu, "default/webhello.json", "HEAD")
    assert r.status_code == 200
    assert r.content == b""


def test_json_body_fields_become_parameters_and_text_bodies_ow_body(emu, web_echo):
    args = web(emu, f"default/{web_echo}.json", "POST", json={"a": 1}).json()
    assert args["a"] == 1 and "__ow_body" not in args
    args = web(emu, f"default/{web_echo}.json", "POST", data="plain words",
               headers={"Content-Type": "text/plain"}).json()
    assert args["__ow_body"] == "plain words"
    args = web(emu, f"default/{web_echo}.json", "POST", data=b"\x00\x01",
               headers={"Content-Type": "application/octet-stream"}).json()
    assert args["__ow_body"] == base64.b64encode(b"\x00\x01").decode()
    args = web(emu, f"default/{web_echo}.json", "POST", data={"f": "v"}).json()
    assert args["f"] == "v"


def test_authenticated_caller_is_passed_as_ow_user(emu, web_echo):
    args = web(emu, f"default/{web_echo}.json", auth=emu.basic_auth).json()
    assert args["__ow_user"] == "guest"


def test_reserved_parameters_are_400(emu, web_echo):
    r = web(emu, f"default/{web_echo}.json", params={"__ow_method": "x"})
    assert r.status_code == 400
    assert r.json()["error"] == (
        "Request defines parameters that are not allowed (e.g., reserved properties)."
    )
    r = web(emu, f"default/{web_echo}.json", "POST", json={"__ow_user": "me"})
    assert r.status_code == 400


def test_raw_http_passes_query_and_body_untouched(emu, uname):
    name = uname("raw")
    put_action(emu, name, ECHO, annotations=[{"key": "web-export", "value": True},
                                             {"key": "raw-http", "value": True}])
    args = web(emu, f"default/{name}.json", "POST", params={"a": "1", "b": "2"},
               data="hello", headers={"Content-Type": "text/plain"}).json()
    assert args["__ow_query"] == "a=1&b=2"
    assert args["__ow_body"] == "hello"
    assert "a" not in args
    args = web(emu, f"default/{name}.json", "POST", json={"x": 1}).json()
    assert base64.b64decode(args["__ow_body"]) == b'{"x": 1}'
    assert web(emu, f"default/{name}.json").json()["__ow_body"] == ""


def test_not_exported_or_unknown_actions_are_404(emu):
    assert web(emu, "default/hello.json").status_code == 404
    assert web(emu, "default/nothing-here.json").status_code == 404
    assert requests.get(f"{emu.url}/api/v1/web/other/default/webhello.json",
                        timeout=5).status_code == 404


def test_require_whisk_auth_true_needs_basic_credentials(emu, uname):
    name = uname("secure")
    put_action(emu, name, annotations=[{"key": "web-export", "value": True},
                                       {"key": "require-whisk-auth", "value": True}])
    assert web(emu, f"default/{name}.json").status_code == 401
    r = web(emu, f"default/{name}.json", auth=emu.basic_auth)
    assert r.status_code == 200


def test_require_whisk_auth_secret_needs_the_header(emu, uname):
    name = uname("secret")
    put_action(emu, name, annotations=[{"key": "web-export", "value": True},
                                       {"key": "require-whisk-auth", "value": "s3cret"}])
    assert web(emu, f"default/{name}.json").status_code == 401
    assert web(emu, f"default/{name}.json",
               headers={"X-Require-Whisk-Auth": "wrong"}).status_code == 401
    r = web(emu, f"default/{name}.json", headers={"X-Require-Whisk-Auth": "s3cret"})
    assert r.status_code == 200


def test_options_answers_cors_by_default(emu):
    r = web(emu, "default/webhello.json", "OPTIONS",
            headers={"Access-Control-Request-Headers": "X-Thing"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "PATCH" in r.headers["Access-Control-Allow-Methods"]
    assert r.headers["Access-Control-Allow-Headers"] == "X-Thing"


def test_text_html_and_svg_extensions_render_their_field(emu, uname):
    name = uname("render")
    code = ("def main(args):\n    return {'text': 'plain', 'html': '<p>x</p>', "
            "'svg': '<svg/>', 'nested': {'deep': 'value'}}\n")
    put_action(emu, name, code, annotations=[{"key": "web-export", "value": True}])
    r = web(emu, f"default/{name}.text")
    assert (r.status_code, r.text, r.headers["Content-Type"].split(";")[0]) == (
        200, "plain", "text/plain")
    r = web(emu, f"default/{name}.html")
    assert (r.text, r.headers["Content-Type"].split(";")[0]) == ("<p>x</p>", "text/html")
    r = web(emu, f"default/{name}.svg")
    assert (r.text, r.headers["Content-Type"].split(";")[0]) == ("<svg/>", "image/svg+xml")
    r = web(emu, f"default/{name}.json/nested")
    assert r.json() == {"deep": "value"}


def test_http_results_with_binary_body_and_status(emu, uname):
    name = uname("binary")
    png = base64.b64encode(b"\x89PNG\r\n").decode()
    code = ("def main(args):\n    return {'statusCode': 201, 'headers': "
            f"{{'Content-Type': 'image/png', 'X-N': 5}}, 'body': '{png}'}}\n")
    put_action(emu, name, code, annotations=[{"key": "web-export", "value": True}])
    r = web(emu, f"default/{name}")
    assert r.status_code == 201
    assert r.content == b"\x89PNG\r\n"
    assert r.headers["X-N"] == "5"


def test_http_result_without_body_is_204_and_bad_shapes_are_400(emu, uname):
    empty, bad = uname("empty"), uname("bad")
    put_action(emu, empty, "def main(args):\n    return {}\n",
               annotations=[{"key": "web-export", "value": True}])
    assert web(emu, f"default/{empty}").status_code == 204
    put_action(emu, bad, "def main(args):\n    return {'statusCode': 'abc'}\n",
               annotations=[{"key": "web-export", "value": True}])
    r = web(emu, f"default/{bad}")
    assert r.status_code == 400
    assert r.json()["error"] == "Response is not valid 'message/http'."


def test_application_error_renders_the_error_value(emu, uname):
    name = uname("apperr")
    code = ("def main(args):\n    return {'error': {'statusCode': 418, 'body': 'teapot'}}\n")
    put_action(emu, name, code, annotations=[{"key": "web-export", "value": True}])
    r = web(emu, f"default/{name}.http")
    assert (r.status_code, r.text) == (418, "teapot")


def test_developer_error_is_400_processing_error(emu, uname):
    name = uname("crash")
    put_action(emu, name, "def main(args):\n    raise SystemExit(3)\n",
               annotations=[{"key": "web-export", "value": True}])
    r = web(emu, f"default/{name}.json")
    assert r.status_code == 400
    assert r.json()["error"] == "There was an error processing your request."


def test_packaged_web_action_uses_its_package_segment(emu, uname):
    name = uname("pkgweb")
    put_action(emu, f"waddlebot/{name}", ECHO,
               annotations=[{"key": "web-export", "value": True}])
    r = web(emu, f"waddlebot/{name}.json", params={"x": "1"})
    assert r.json()["x"] == "1"
    emu.api("DELETE", f"/namespaces/_/actions/waddlebot/{name}")


def test_slow_web_action_answers_202_not_ready(start_emulator):
    emu = start_emulator("--max-blocking-wait-ms", "300")
    emu.api("PUT", "/namespaces/_/actions/slowweb", params={"overwrite": "true"},
            json={"exec": {"kind": "python:3",
                           "code": "import time\ndef main(a):\n    time.sleep(1)\n    return {}\n"},
                  "annotations": [{"key": "web-export", "value": True}]})
    r = web(emu, "default/slowweb.json")
    assert r.status_code == 202
    assert r.json()["error"] == "Response not yet ready."
    assert len(r.headers["x-openwhisk-activation-id"]) == 32


def test_web_payload_over_limit_is_413(emu, web_echo):
    r = web(emu, f"default/{web_echo}.json", "POST", data=b"x" * (1024 * 1024 + 1),
            headers={"Content-Type": "text/plain"})
    assert r.status_code == 413
