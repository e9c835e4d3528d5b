"""Recorded executions: one by id, or a filtered, paged list."""

from __future__ import annotations

from owaction.auth import PERMISSION_READ
from owaction.rest.api import ApiBlueprint, service
from owaction.rest.schemas import Execution, ExecutionsQuery, ExecutionsReply

bp = ApiBlueprint("executions", __name__, tag="executions", url_prefix="/api/v1")


def execution_reply(record) -> Execution:
    return Execution.model_validate(record.public())


# `path` so that an id holding a slash reaches the view and gets a 400 that says why.
@bp.operation("GET", "/executions/<path:execution_id>", summary="Get an execution",
              permission=PERMISSION_READ,
              responses={200: (Execution, "the execution; an accepted one is refreshed from "
                                          "OpenWhisk first")},
              errors=(400, 404, 503))
def get_execution(claims, execution_id: str):
    return execution_reply(service().get_execution(execution_id)), 200


@bp.operation("GET", "/executions", summary="List executions, newest first",
              permission=PERMISSION_READ, query=ExecutionsQuery,
              responses={200: (ExecutionsReply, "a page of executions")}, errors=(503,))
def list_executions(claims, query: ExecutionsQuery):
    records, next_cursor = service().list_executions(
        action_name=query.action_name, action_type=query.action_type, status=query.status,
        since=query.since, until=query.until, limit=query.limit, cursor=query.cursor,
    )
    return ExecutionsReply(executions=[execution_reply(r) for r in records],
                           next_cursor=next_cursor), 200
