"""The /whisk.system/alarms feeds: the lifecycle, its checks, and triggers fired on schedule."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import requests

ECHO = "/whisk.system/utils/echo"


def feed(emu, event, trigger, action="alarm", **params):
    body = {"lifecycleEvent": event, "triggerName": f"/guest/{trigger}", "authKey": emu.auth,
            **params}
    r = emu.api("POST", f"/namespaces/whisk.system/actions/alarms/{action}",
                params={"blocking": "true"}, json=body)
    assert r.status_code in (200, 502), r.text
    return r.json()["response"]


def trigger_with_rule(emu, uname):
    trigger, rule = uname("alarm"), uname("rule")
    assert emu.api("PUT", f"/namespaces/_/triggers/{trigger}", json={}).status_code == 200
    r = emu.api("PUT", f"/namespaces/_/rules/{rule}",
                json={"trigger": f"/_/{trigger}", "action": ECHO})
    assert r.status_code == 200, r.text
    return trigger, rule


def fired(emu, marker):
    """The echo activations whose payload carries ``marker``."""
    return [a for a in emu.activations(name="utils/echo")
            if a["response"]["result"].get("marker") == marker]


def wait_for(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.2)


def test_cron_alarm_fires_the_rule_on_schedule_until_its_rule_is_off_or_it_is_deleted(emu,
                                                                                     uname):
    trigger, rule = trigger_with_rule(emu, uname)
    marker = uname("m")
    created = feed(emu, "CREATE", trigger, cron="* * * * * *",
                   trigger_payload={"marker": marker})
    assert created["success"], created
    assert created["result"] == {"status": "success"}
    wait_for(lambda: len(fired(emu, marker)) >= 2)
    starts = sorted(a["start"] for a in fired(emu, marker))
    assert starts[1] - starts[0] >= 500  # one a second, not a burst

    read = feed(emu, "READ", trigger)["result"]
    assert read["config"] == {"name": trigger, "namespace": "guest", "payload": {"marker": marker},
                              "cron": "* * * * * *", "startDate": None, "stopDate": None}
    assert read["status"]["active"] is True

    # The alarms package knows CREATE, READ, UPDATE and DELETE, exactly so, and nothing else.
    for event in ("PAUSE", "UNPAUSE", "create", None):
        refused = feed(emu, event, trigger)
        assert not refused["success"]
        assert refused["result"] == {"error": "unsupported lifecycleEvent"}
    assert feed(emu, "READ", trigger)["result"]["status"]["active"] is True

    # A disabled rule stops the firing reaching the action, the alarm itself goes on.
    emu.api("POST", f"/namespaces/_/rules/{rule}", json={"status": "inactive"})
    time.sleep(1.5)
    count = len(fired(emu, marker))
    time.sleep(2.5)
    assert len(fired(emu, marker)) == count

    assert feed(emu, "DELETE", trigger)["success"]
    gone = feed(emu, "READ", trigger)
    assert not gone["success"]
    assert "could not find trigger" in gone["result"]["error"]


def test_update_changes_the_payload(emu, uname):
    trigger, _ = trigger_with_rule(emu, uname)
    first, second = uname("m"), uname("m")
    assert feed(emu, "CREATE", trigger, cron="* * * * * *",
                trigger_payload={"marker": first})["success"]
    wait_for(lambda: fired(emu, first))
    assert feed(emu, "UPDATE", trigger, trigger_payload={"marker": second})["success"]
    wait_for(lambda: fired(emu, second))
    nothing = feed(emu, "UPDATE", trigger)
    assert nothing["result"] == {"error": "no updatable parameters were specified"}
    feed(emu, "DELETE", trigger)


def test_once_fires_a_single_time_and_can_delete_its_trigger(emu, uname):
    trigger, _ = trigger_with_rule(emu, uname)
    marker = uname("m")
    when = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    assert feed(emu, "CREATE", trigger, action="once", date=when, deleteAfterFire="rules",
                trigger_payload={"marker": marker})["success"]
    wait_for(lambda: fired(emu, marker))
    wait_for(lambda: emu.api("GET", f"/namespaces/_/triggers/{trigger}").status_code == 404)
    time.sleep(1.5)
    assert len(fired(emu, marker)) == 1
    assert not [r for r in emu.api("GET", "/namespaces/_/rules", params={"limit": 0}).json()
                if r["trigger"]["name"] == trigger]


def test_interval_starts_at_its_start_date(emu, uname):
    trigger, _ = trigger_with_rule(emu, uname)
    marker = uname("m")
    start = int((time.time() + 1) * 1000)
    assert feed(emu, "CREATE", trigger, action="interval", minutes=60, startDate=start,
                trigger_payload={"marker": marker})["success"]
    wait_for(lambda: fired(emu, marker))
    read = feed(emu, "READ", trigger, action="interval")["result"]["config"]
    assert read["minutes"] == 60 and read["startDate"] == start
    feed(emu, "DELETE", trigger, action="interval")


def test_feed_checks(emu, uname):
    trigger, _ = trigger_with_rule(emu, uname)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    cases = [
        ({}, "alarm", "alarms trigger feed is missing the cron parameter"),
        ({"cron": "61 * * * *"}, "alarm", "cron pattern '61 * * * *' is not valid"),
        ({"cron": "*/5 * * * * *", "limitCronFields": True}, "alarm",
         "cron pattern is limited to 5 fields with 1 minute as the finest granularity"),
        ({"cron": "* * * * *", "startDate": past}, "alarm",
         f"startDate parameter '{past}' must be in the future"),
        ({"cron": "* * * * *", "startDate": "soon"}, "alarm",
         "startDate parameter 'soon' is not a valid Date"),
        ({}, "once", "alarms once trigger feed is missing the date parameter"),
        ({"minutes": 0}, "interval", "interval trigger feed is missing the minutes parameter"),
        ({"minutes": "x"}, "interval", "the minutes parameter must be an integer"),
        ({"minutes": -2}, "interval", "the minutes parameter must be an integer greater than zero"),
    ]
    for params, action, message in cases:
        answer = feed(emu, "CREATE", trigger, action=action, **params)
        assert (answer["success"], answer["result"]) == (False, {"error": message}), params
    missing = feed(emu, "CREATE", uname("nope"), cron="* * * * *")
    assert missing["result"] == {"error": "Trigger authentication request failed."}
    bad_key = emu.api("POST", "/namespaces/whisk.system/actions/alarms/alarm",
                      params={"blocking": "true"},
                      json={"lifecycleEvent": "CREATE", "triggerName": f"/guest/{trigger}",
                            "authKey": "x:y", "cron": "* * * * *"}).json()["response"]
    assert bad_key["result"] == {"error": "no valid authKey was provided"}
    assert feed(emu, "DELETE", trigger)["result"]["error"].startswith("could not find trigger")


def test_max_triggers_stops_a_cron_alarm(emu, uname):
    trigger, _ = trigger_with_rule(emu, uname)
    marker = uname("m")
    assert feed(emu, "CREATE", trigger, cron="* * * * * *", maxTriggers=2,
                trigger_payload={"marker": marker})["success"]
    wait_for(lambda: len(fired(emu, marker)) == 2)
    wait_for(lambda: feed(emu, "READ", trigger)["result"]["status"]["active"] is False)
    time.sleep(2)
    assert len(fired(emu, marker)) == 2
    feed(emu, "DELETE", trigger)


def test_the_provider_answers_bad_requests_with_4xx_json(emu):
    url = f"{emu.url}/_emulator/alarms"
    for method, kw in [("POST", {"data": b"[1]"}), ("POST", {"data": b"{"}),
                       ("PUT", {"json": {"triggerName": 5}}), ("GET", {}),
                       ("DELETE", {"json": {"triggerName": "/a/b/c"}}),
                       ("POST", {"json": {"triggerName": "/guest/x", "cron": {"a": 1}}}),
                       ("POST", {"json": {"triggerName": "/guest/x", "fireOnce": True,
                                          "date": [1]}})]:
        r = requests.request(method, url, auth=emu.basic_auth, timeout=10, **kw)
        assert 400 <= r.status_code < 500, (method, kw, r.status_code, r.text)
        assert "error" in r.json()
    assert requests.post(url, json={}, timeout=10).status_code == 401
