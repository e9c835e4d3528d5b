"""Signed inbound webhooks: ``POST /api/v1/webhooks/<hook>`` fires a trigger, invokes an action
(non-blocking) or calls a web action, once per delivery.

The hooks file (``WEBHOOKS_FILE``, YAML or JSON)::

    webhooks:
      twitch-follows:                      # the URL is /api/v1/webhooks/twitch-follows
        verify: twitch                     # twitch | github | hmac
        secret_env: TWITCH_EVENTSUB_SECRET # the variable holding the secret, never the secret
        fire_trigger: ping                 # or invoke_action: [pkg/]action, web_action: pkg/action
        payload:                           # optional: what the target gets (dotted body paths)
          user: event.user_login
      shop:
        verify: hmac
        secret_env: SHOP_WEBHOOK_SECRET
        signature_header: X-Shop-Signature
        algorithm: sha256                  # sha1 | sha256 | sha384 | sha512
        encoding: hex                      # hex | base64
        prefix: "sha256="                  # stripped before comparing; optional
        timestamp_header: X-Shop-Timestamp # optional: then "<timestamp>.<body>" is signed
        tolerance: 300                     # seconds; Twitch's default is 600
        id_header: X-Shop-Delivery         # optional: the delivery id
        web_action: default/webhello

Without ``payload`` the target gets ``{"body": <the JSON body>}``; either way it also gets
``webhook: {hook, source, event, delivery_id}``. The file is re-read when it changes and on
SIGHUP; a bad file is refused with one ERROR line and the previous hooks stay in force.

The use case (verify, record once, run, acknowledge) is the service's:
``owaction/service/webhooks.py``.
"""

from owaction.webhooks import generic, github, twitch

# A hook's ``verify`` -> the module with its ``verify`` and ``sample``.
VERIFIERS = {"twitch": twitch, "github": github, "hmac": generic}
