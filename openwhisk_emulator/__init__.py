"""A local OpenWhisk controller API (``python -m openwhisk_emulator`` / ``owaction emulator``).

Routes under ``/api/v1`` answer as Apache OpenWhisk's controller does (see
docs in ``README.md`` beside this file); actions run as local processes (``runtime.py``).

Fault injection (only with ``--faults``), outside ``/api/v1``:

``POST /_emulator/faults`` with a JSON object::

    {"method": "POST",            # optional; any method when absent
     "path": "/actions/hello",    # optional regex, searched in the request path
     "status": 503,               # answer this status ...
     "body": {...},               # ... with this JSON body (default {"error", "code"})
     "headers": {...},            # ... and these headers
     "delay_ms": 1500,            # wait first; alone, it delays and then proceeds normally
     "drop": true,                # close the connection without any answer
     "times": 1}                  # how many requests it hits (default 1; -1 = until reset)

A request that a fault answers or drops never reaches the API: no action runs. Faults are tried
in the order they were added; the first match is used. ``GET /_emulator/faults`` lists them with
the remaining ``times``; ``DELETE /_emulator/faults`` removes them all. A bad spec is a 400.

Modules: ``api`` (Flask app, routes), ``registry`` (entities), ``running`` (activations in
greenlets, sequences, triggers), ``records`` (activation records), ``quotas`` (429 throttles),
``webcalls`` (web actions), ``faultinjection``, ``manifest`` (``--seed``), ``server`` (gevent
server and options), ``runtime`` (action processes), ``catalog`` (the ``/whisk.system`` packages,
code in ``catalog/``), ``alarms`` and ``cron`` (the alarms provider), ``apigateway`` (API routes).
"""
