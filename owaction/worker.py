"""The completion worker: finishes executions OpenWhisk completes later, and reconciles crashes.

Each pass leases a batch of in-flight rows (several workers never take the same row):

* ``accepted`` with an activation id (non-blocking calls, demoted blocking calls, trigger fires):
  the activation is fetched; when OpenWhisk has it, the row is completed from it. A row still
  without an outcome after ``ACCEPTED_MAX_AGE`` is marked ``unknown``. Otherwise the lease runs
  out and a later pass looks again, the wait doubling with every attempt (capped).
* finished executions with a callback URL: the record is POSTed there (owaction.callbacks).
* ``pending`` older than ``PENDING_GRACE`` (the process that wrote it died before OpenWhisk
  answered, so no activation id is known): marked ``unknown``; nothing is invoked again, because
  the action may have run.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading

from owaction import tracing
from owaction.backoff import exponential
from owaction.callbacks import CallbackDeliverer
from owaction.config import Settings
from owaction.errors import ServiceError
from owaction.healthcheck import beat
from owaction.logs import aaa, setup_logging
from owaction.service import ACCEPTED, PENDING, UNKNOWN, ActionService

log = logging.getLogger("owaction.worker")
LEASE_FIRST_SECONDS = 2.0
LEASE_CAP_SECONDS = 60.0


def lease_for(attempts: int) -> float:
    """How long a row is left alone after ``attempts`` looks: doubling, capped."""
    return exponential(attempts, first=LEASE_FIRST_SECONDS, cap=LEASE_CAP_SECONDS)


class CompletionWorker:
    def __init__(self, service: ActionService, *, owner: str | None = None, batch: int = 100,
                 callbacks: CallbackDeliverer | None = None):
        self.service = service
        self.callbacks = callbacks or CallbackDeliverer(service.settings, service.store)
        self.settings = service.settings
        self.store = service.store
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.batch = batch

    def run_once(self) -> dict[str, int]:
        """One pass; counts of what it did, by outcome."""
        counts = {"completed": 0, "unknown": 0, "waiting": 0}
        rows = self.store.claim_accepted(
            self.owner, lease_seconds=LEASE_FIRST_SECONDS, limit=self.batch,
            pending_grace=self.settings.pending_grace,
        )
        now = dt.datetime.now(dt.UTC)
        for record in rows:
            age = (now - record.created_at).total_seconds()
            if record.status == PENDING and not record.activation_id:
                self._unknown(record, "the process handling this execution stopped before "
                                      "OpenWhisk answered; the action may have run")
                counts["unknown"] += 1
                continue
            refreshed = self.service.refresh_execution(record)
            if refreshed is not None and refreshed.status != ACCEPTED:
                counts["completed"] += 1
                aaa("AUDIT", "complete_execution", refreshed.status.upper(),
                    execution_id=record.execution_id, activation_id=record.activation_id,
                    attempts=record.attempts)
            elif age > self.settings.accepted_max_age:
                self._unknown(record, "OpenWhisk did not report an outcome within "
                                      f"{self.settings.accepted_max_age} s")
                counts["unknown"] += 1
            else:
                self.store.extend_lease(record.execution_id, self.owner,
                                        lease_for(record.attempts))
                counts["waiting"] += 1
        counts.update(self.callbacks.deliver_due())
        return counts

    def close(self) -> None:
        self.callbacks.close()

    def _unknown(self, record, reason: str) -> None:
        self.store.complete(record.execution_id, status=UNKNOWN, success=False, error=reason)
        aaa("AUDIT", "complete_execution", "UNKNOWN", level=logging.WARNING,
            execution_id=record.execution_id, activation_id=record.activation_id, msg=reason)


def main(settings: Settings, *, once: bool = False) -> int:
    setup_logging(settings, process="worker")
    tracing.configure(f"{settings.module_name}-worker")
    service = ActionService.from_settings(settings)
    worker = CompletionWorker(service)
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, lambda *_: service.commands.reload())
    from owaction.metrics import start_metrics_server
    from owaction.registration import Registrar

    # A one-shot pass (cron, an operator beside a running worker) serves no metrics and does not
    # register: the long-running worker on this host already holds that port and that role.
    registrar = Registrar(settings, service.commands)
    if not once:
        start_metrics_server(settings.worker_metrics_port, settings=settings)
        registrar.start()
    aaa("SYSTEM", "worker_start", "SUCCESS", owner=worker.owner)
    try:
        while not stop.is_set():
            try:
                worker.run_once()
            except ServiceError as exc:
                # The database is down: keep trying; nothing is lost while rows wait.
                aaa("ERROR", "worker_pass", "FAILURE", level=logging.ERROR, msg=str(exc))
            beat(settings)  # the loop is alive even when the database is not
            if once:
                break
            stop.wait(settings.worker_poll_interval)
    finally:
        registrar.stop()
        worker.close()
        service.close()
        aaa("SYSTEM", "worker_stop", "SUCCESS", owner=worker.owner)
    return 0
