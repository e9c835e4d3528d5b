"""The alarms provider: what the ``/whisk.system/alarms`` feed actions register, fired on schedule.

A real deployment's feed action calls the provider's web action (alarmWebAction), which checks the
trigger with the caller's key, keeps the alarm in a database, and a provider service fires the
trigger. Here the feed action (``catalog/alarms/alarm.py``) calls ``/_emulator/alarms`` with the
caller's key; each alarm is a greenlet that fires the trigger through the same path as
``POST /triggers/{name}``. Validation and messages follow alarmWebAction.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import gevent
from flask import Flask, Response, request

from openwhisk_emulator.cron import Cron, CronError
from openwhisk_emulator.problems import ApiError
from openwhisk_emulator.records import new_activation_id
from openwhisk_emulator.registry import RULES, TRIGGERS

log = logging.getLogger("openwhisk_emulator")

PROVIDER_PATH = "/_emulator/alarms"
DELETE_AFTER_FIRE = ("false", "true", "rules")
# alarmWebAction starts an interval 30 s from now when no startDate is given.
INTERVAL_DEFAULT_DELAY = timedelta(seconds=30)


class AlarmError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _now() -> datetime:
    return datetime.now(UTC)


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _parse_date(raw: Any) -> datetime | None:
    """What JavaScript's ``new Date(raw)`` accepts that matters here: epoch ms or ISO 8601."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return datetime.fromtimestamp(raw / 1000, UTC)
    if isinstance(raw, str):
        text = raw.strip()
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _check_date(raw: Any, name: str, after: datetime | None = None) -> datetime:
    moment = _parse_date(raw)
    if moment is None:
        raise AlarmError(400, f"{name} parameter '{raw}' is not a valid Date")
    if moment <= _now():
        raise AlarmError(400, f"{name} parameter '{raw}' must be in the future")
    if after is not None and moment <= after:
        raise AlarmError(400, f"{name} parameter '{raw}' must be greater than the startDate "
                         "parameter")
    return moment


def _check_cron(raw: Any, limit_fields: bool) -> Cron:
    try:
        cron = Cron.parse(raw)
    except CronError:
        raise AlarmError(400, f"cron pattern '{raw}' is not valid") from None
    if limit_fields and cron.has_seconds:
        raise AlarmError(400, "cron pattern is limited to 5 fields with 1 minute as the finest "
                         "granularity")
    return cron


def _check_minutes(raw: Any) -> int:
    try:
        minutes = int(str(raw))
    except ValueError:
        raise AlarmError(400, "the minutes parameter must be an integer") from None
    if minutes <= 0:
        raise AlarmError(400, "the minutes parameter must be an integer greater than zero")
    return minutes


def _check_max_triggers(raw: Any) -> int:
    try:
        count = int(str(raw))
    except ValueError:
        raise AlarmError(400, "the maxTriggers parameter must be an integer") from None
    return count if count > 0 else -1


def _payload(raw: Any) -> dict:
    if isinstance(raw, str):
        return {"payload": raw}
    return raw if isinstance(raw, dict) else {}


@dataclass
class Alarm:
    """One trigger's schedule: a cron pattern, an interval in minutes, or a single date."""

    trigger: str  # "ns/name"
    payload: dict
    cron: str | None = None
    minutes: int | None = None
    date: Any = None
    start: datetime | None = None
    stop: datetime | None = None
    raw_start: Any = None
    raw_stop: Any = None
    delete_after_fire: str = "false"
    active: bool = True
    changed: int = field(default_factory=lambda: int(time.time() * 1000))
    reason: dict | None = None
    fired: int = 0
    max_triggers: int = -1  # -1: no limit
    greenlet: gevent.Greenlet | None = None

    def next_fire(self, after: datetime) -> datetime | None:
        if self.date is not None:
            moment = _parse_date(self.date)
            return moment if self.fired == 0 and moment is not None else None
        if self.minutes is not None:
            # The first fire is at startDate, then one every ``minutes``.
            origin, step = self.start or after, timedelta(minutes=self.minutes)
            periods = 0 if after < origin else int((after - origin) / step) + 1
            moment = origin + periods * step
        else:
            if self.start is not None and after < self.start:
                after = self.start - timedelta(seconds=1)
            moment = Cron.parse(self.cron).next_after(after)
        if moment is None or (self.stop is not None and moment > self.stop):
            return None
        return moment

    def describe(self) -> dict:
        config: dict[str, Any] = {"name": self.trigger.split("/", 1)[1],
                                  "namespace": self.trigger.split("/", 1)[0],
                                  "payload": self.payload}
        if self.date is not None:
            config.update(date=self.date, deleteAfterFire=self.delete_after_fire)
        else:
            config.update(startDate=self.raw_start, stopDate=self.raw_stop)
            if self.minutes is not None:
                config["minutes"] = self.minutes
            else:
                config["cron"] = self.cron
        status = {"active": self.active, "dateChanged": self.changed,
                  "dateChangedISO": datetime.fromtimestamp(self.changed / 1000, UTC)
                  .strftime("%Y-%m-%dT%H:%M:%SZ")}
        if self.reason:
            status["reason"] = self.reason
        return {"config": config, "status": status}


class AlarmProvider:
    """Every registered alarm of the emulator, each one a greenlet waiting for its next fire."""

    def __init__(self, emu: Any):
        self.emu = emu
        self.alarms: dict[str, Alarm] = {}

    # --- the provider API, as alarmWebAction answers it ----------------------------------------

    def trigger_key(self, params: dict) -> str:
        name = params.get("triggerName")
        if not name:
            raise AlarmError(400, "no trigger name parameter was provided")
        parts = str(name).strip("/").split("/")
        if len(parts) != 2:
            raise AlarmError(400, f"trigger name '{name}' is not /namespace/name")
        namespace = self.emu.config.namespace if parts[0] == "_" else parts[0]
        return f"{namespace}/{parts[1]}"

    def _verify_trigger(self, key: str, deleting: bool) -> None:
        """alarmWebAction's verifyTriggerAuth: the caller's key must read the trigger."""
        namespace = key.split("/", 1)[0]
        if namespace != self.emu.config.namespace:
            raise AlarmError(403, "Trigger authentication request failed.")
        try:
            self.emu.registry.get(TRIGGERS, key)
        except ApiError as exc:
            if not (deleting and exc.status == 404):
                raise AlarmError(exc.status, "Trigger authentication request failed.") from None

    def create(self, params: dict) -> dict:
        key = self.trigger_key(params)
        alarm = Alarm(trigger=key, payload=_payload(params.get("trigger_payload")))
        if params.get("fireOnce"):
            if not params.get("date"):
                raise AlarmError(400, "alarms once trigger feed is missing the date parameter")
            _check_date(params["date"], "date")
            alarm.date = params["date"]
            if params.get("deleteAfterFire"):
                alarm.delete_after_fire = self._delete_after_fire(params["deleteAfterFire"])
        else:
            cron = None
            if params.get("isInterval"):
                if not params.get("minutes"):
                    raise AlarmError(400, "interval trigger feed is missing the minutes parameter")
                alarm.minutes = _check_minutes(params["minutes"])
            else:
                if not params.get("cron"):
                    raise AlarmError(400, "alarms trigger feed is missing the cron parameter")
                cron = _check_cron(params["cron"], bool(params.get("limitCronFields")))
                alarm.cron = params["cron"]
            if params.get("startDate"):
                alarm.start = _check_date(params["startDate"], "startDate")
                alarm.raw_start = params["startDate"]
            elif alarm.minutes is not None:
                alarm.start = _now() + INTERVAL_DEFAULT_DELAY
                alarm.raw_start = _epoch_ms(alarm.start)
            if params.get("maxTriggers") and params.get("stopDate"):
                if alarm.minutes is not None:
                    raise AlarmError(400, "maxTriggers is not supported for the interval trigger "
                                     "feed")
                raise AlarmError(400, "maxTriggers is not allowed when the stopDate parameter is "
                                 "specified")
            if params.get("maxTriggers"):
                alarm.max_triggers = _check_max_triggers(params["maxTriggers"])
            if params.get("stopDate"):
                alarm.stop = _check_date(params["stopDate"], "stopDate", alarm.start)
                alarm.raw_stop = params["stopDate"]
                first = cron.next_after(max(_now(), alarm.start or _now())) if cron else None
                if first is not None and first > alarm.stop:
                    raise AlarmError(400, "the first scheduled trigger fire is not until after "
                                     "the stop date")
        self._verify_trigger(key, deleting=False)
        if key in self.alarms:
            raise AlarmError(409, f"unable to create the trigger {key}: it already has an alarm")
        self.alarms[key] = alarm
        self._schedule(alarm)
        return {"status": "success"}

    def read(self, params: dict) -> dict:
        key = self.trigger_key(params)
        self._verify_trigger(key, deleting=False)
        return self._get(key).describe()

    def update(self, params: dict) -> dict:
        key = self.trigger_key(params)
        self._verify_trigger(key, deleting=False)
        alarm = self._get(key)
        changes: dict[str, Any] = {}
        if params.get("trigger_payload"):
            changes["payload"] = _payload(params["trigger_payload"])
        if alarm.date is not None:
            if params.get("date"):
                _check_date(params["date"], "date")
                changes.update(date=params["date"], fired=0)
            if params.get("deleteAfterFire"):
                changes["delete_after_fire"] = self._delete_after_fire(params["deleteAfterFire"])
        else:
            if alarm.minutes is not None and params.get("minutes"):
                changes["minutes"] = _check_minutes(params["minutes"])
            if alarm.cron is not None and params.get("cron"):
                _check_cron(params["cron"], bool(params.get("limitCronFields")))
                changes["cron"] = params["cron"]
            start = alarm.start
            if params.get("startDate"):
                start = _check_date(params["startDate"], "startDate")
                changes.update(start=start, raw_start=params["startDate"])
            if params.get("stopDate"):
                changes.update(stop=_check_date(params["stopDate"], "stopDate", start),
                               raw_stop=params["stopDate"])
            elif params.get("startDate") and alarm.stop is not None and start >= alarm.stop:
                raise AlarmError(400, f"startDate parameter '{params['startDate']}' must be less "
                                 f"than the stopDate parameter '{alarm.raw_stop}'")
        if not changes:
            raise AlarmError(400, "no updatable parameters were specified")
        self._cancel(alarm)
        for name, value in changes.items():
            setattr(alarm, name, value)
        # As the provider's updateTrigger: an updated alarm is active again, whatever stopped it.
        alarm.active, alarm.reason = True, None
        alarm.changed = int(time.time() * 1000)
        self._schedule(alarm)
        return {"status": "success"}

    def delete(self, params: dict) -> dict:
        key = self.trigger_key(params)
        self._verify_trigger(key, deleting=True)
        alarm = self._get(key)
        self._cancel(alarm)
        del self.alarms[key]
        return {"status": "success"}

    def close(self) -> None:
        for alarm in list(self.alarms.values()):
            self._cancel(alarm)

    def _get(self, key: str) -> Alarm:
        alarm = self.alarms.get(key)
        if alarm is None:
            raise AlarmError(404, f"could not find trigger {key} in the database")
        return alarm

    @staticmethod
    def _delete_after_fire(raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in DELETE_AFTER_FIRE:
            raise AlarmError(400, "deleteAfterFire parameter must be one of [false, true, rules].")
        return value

    # --- firing -----------------------------------------------------------------------------

    def _schedule(self, alarm: Alarm) -> None:
        if alarm.active:
            alarm.greenlet = gevent.spawn(self._run, alarm)

    @staticmethod
    def _cancel(alarm: Alarm) -> None:
        if alarm.greenlet is not None and alarm.greenlet is not gevent.getcurrent():
            alarm.greenlet.kill(block=False)
        alarm.greenlet = None

    def _disable(self, alarm: Alarm, reason: dict) -> None:
        alarm.active = False
        alarm.reason = reason
        alarm.changed = int(time.time() * 1000)

    def _run(self, alarm: Alarm) -> None:
        while alarm.active:
            moment = alarm.next_fire(_now())
            if moment is None:
                if alarm.date is None:
                    self._disable(alarm, {"kind": "AUTO", "message": "the stopDate has passed"})
                return
            gevent.sleep(max(0.0, (moment - _now()).total_seconds()))
            if self.alarms.get(alarm.trigger) is not alarm or not alarm.active:
                return
            self._fire(alarm)
            if alarm.date is not None:
                self._after_once(alarm)
                return
            if 0 < alarm.max_triggers <= alarm.fired:
                self._disable(alarm, {"kind": "AUTO", "message": "maxTriggers reached"})
                return

    def _fire(self, alarm: Alarm) -> None:
        alarm.fired += 1
        try:
            trigger = self.emu.registry.get(TRIGGERS, alarm.trigger)
            self.emu.invoker.fire(trigger, dict(alarm.payload), {},
                                  request_id=new_activation_id())
        except ApiError as exc:
            if exc.status == 404:
                # The provider stops an alarm whose trigger is gone, as the real one does.
                self._disable(alarm, {"kind": "AUTO", "statusCode": 404,
                                      "message": "the trigger no longer exists"})
            else:
                log.info("alarm for %s could not fire: %s", alarm.trigger, exc.message)

    def _after_once(self, alarm: Alarm) -> None:
        registry = self.emu.registry
        if alarm.delete_after_fire in ("true", "rules"):
            if alarm.delete_after_fire == "rules":
                for rule in registry.rules_of(alarm.trigger):
                    registry.delete(RULES, rule.key)
            if registry.find(alarm.trigger) is not None:
                registry.delete(TRIGGERS, alarm.trigger)
            self.alarms.pop(alarm.trigger, None)
        else:
            self._disable(alarm, {"kind": "AUTO", "message": "the alarm fired once"})


def register_alarm_routes(app: Flask, provider: AlarmProvider) -> None:
    """``/_emulator/alarms``: POST creates, GET reads, PUT updates, DELETE removes an alarm."""
    handlers = {"POST": provider.create, "GET": provider.read, "PUT": provider.update,
                "DELETE": provider.delete}

    @app.route(PROVIDER_PATH, methods=list(handlers))
    def alarm_provider():
        if provider.emu.authenticated(request.headers.get("Authorization")) is not True:
            return _answer(401, {"error": "no valid authKey was provided"})
        if request.method == "GET":
            params: Any = dict(request.args.items())
        else:
            try:
                params = json.loads(request.get_data() or b"{}")
            except ValueError:
                params = None
        if not isinstance(params, dict):
            return _answer(400, {"error": "the request body must be a JSON object"})
        try:
            return _answer(200, handlers[request.method](params))
        except AlarmError as exc:
            return _answer(exc.status, {"error": exc.message})

    def _answer(status: int, body: dict) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json")
