"""The feed action of ``/whisk.system/alarms`` (``alarm``, ``once`` and ``interval``).

OpenWhisk's feed protocol: invoked with ``lifecycleEvent`` (CREATE, READ, UPDATE or DELETE,
exactly so: the alarms package refuses any other, PAUSE and UNPAUSE of the generic protocol
included, and a missing one), ``triggerName`` ("/ns/name") and the caller's ``authKey``; it
registers the schedule with the provider, which then fires the trigger with ``trigger_payload``.
Which feed this is comes from the action's own name.
"""

import base64
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request

METHODS = {"CREATE": "POST", "READ": "GET", "UPDATE": "PUT", "DELETE": "DELETE"}
# What the feed protocol adds that the provider has no use for.
PROTOCOL_ONLY = ("lifecycleEvent", "authKey")


def provider_request(method, params, auth_key):
    url = os.environ["__OW_API_HOST"].rstrip("/") + "/_emulator/alarms"
    if not url.startswith(("http://", "https://")):
        return 500, {"error": "__OW_API_HOST is not an http(s) URL"}
    data = None
    if method == "GET":
        url += "?" + urllib.parse.urlencode({"triggerName": params["triggerName"]})
    else:
        data = json.dumps(params).encode()
    token = base64.b64encode(auth_key.encode()).decode()
    req = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310 - checked
        "Authorization": "Basic " + token, "Content-Type": "application/json"})
    # The provider is the emulator itself, whose certificate (if any) is its own.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {"error": f"the alarms provider answered {exc.code}"}


def main(args):
    event = args.get("lifecycleEvent")
    method = METHODS.get(event) if isinstance(event, str) else None
    if method is None:
        return {"error": "unsupported lifecycleEvent"}
    auth_key = args.get("authKey")
    if not isinstance(auth_key, str) or not auth_key:
        return {"error": "no authKey parameter was provided"}
    if not args.get("triggerName"):
        return {"error": "no trigger name parameter was provided"}
    params = {k: v for k, v in args.items()
              if k not in PROTOCOL_ONLY and not k.startswith("__ow_")}
    feed = os.environ.get("__OW_ACTION_NAME", "").rsplit("/", 1)[-1]
    if event == "CREATE" and feed == "once":
        params["fireOnce"] = True
    elif event == "CREATE" and feed == "interval":
        params["isInterval"] = True
    status, body = provider_request(method, params, auth_key)
    if status == 200:
        return body
    return {"error": body.get("error", f"the alarms provider answered {status}")}
