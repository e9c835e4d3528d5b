"""Activation records: how they are built, stored, listed and shown."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from owaction.openwhisk.models import STATUS_CODES, STATUS_SUCCESS


def new_activation_id() -> str:
    return uuid.uuid4().hex


def response(status: str, result: Any, size: int | None = None) -> dict:
    doc = {
        "status": status,
        "statusCode": STATUS_CODES[status],
        "success": status == STATUS_SUCCESS,
        "result": result,
    }
    if size is not None:
        doc["size"] = size
    return doc


def extended(record: dict, *, logs: bool = True) -> dict:
    """What the API shows: no ``response.statusCode``; no end/duration while ``end`` is 0."""
    doc = copy.deepcopy(record)
    doc["response"].pop("statusCode", None)
    if not doc.get("end"):
        doc.pop("end", None)
        doc.pop("duration", None)
    if not logs:
        doc["logs"] = []
    return doc


def summary(record: dict) -> dict:
    """A list row (OpenWhisk's ``activations`` view): no logs, no response."""
    doc = {
        k: copy.deepcopy(record[k])
        for k in ("namespace", "name", "version", "publish", "annotations", "activationId",
                  "start", "end", "duration")
        if k in record
    }
    if record.get("cause"):
        doc["cause"] = record["cause"]
    if record.get("end"):
        doc["statusCode"] = record["response"]["statusCode"]
    else:
        doc.pop("end", None)
        doc.pop("duration", None)
    return doc


def matches_name(record: dict, name: str) -> bool:
    """The ``name`` filter: ``action`` or ``pkg/action``, as the ``path`` annotation has it."""
    if "/" not in name:
        return record["name"] == name
    path = next((a["value"] for a in record["annotations"] if a["key"] == "path"), "")
    return path.split("/", 1)[-1] == name


class ActivationStore:
    """Completed activations, newest first; a record exists only once it is complete."""

    def __init__(self, max_records: int = 100_000):
        self._records: dict[str, dict] = {}
        self._max = max_records

    def put(self, record: dict) -> None:
        self._records[record["activationId"]] = record
        # Old records go first, so a long benchmark cannot grow the emulator without bound.
        while len(self._records) > self._max:
            self._records.pop(next(iter(self._records)))

    def get(self, activation_id: str) -> dict | None:
        return self._records.get(activation_id)

    def query(self, *, name: str | None, since: int | None, upto: int | None) -> list[dict]:
        rows = [
            r
            for r in self._records.values()
            if (name is None or matches_name(r, name))
            and (since is None or r["start"] >= since)
            and (upto is None or r["start"] <= upto)
        ]
        rows.sort(key=lambda r: r["start"], reverse=True)
        return rows
