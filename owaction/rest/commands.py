"""``POST /api/v1/execute``: WaddleBot's router sends a #command here.

Every handled outcome (success, failure, unknown command) is a 200 ModuleResponse, because the
router reports any other status as "Module did not respond"; a 429 keeps its meaning, since the
router backs off on it.
"""

from __future__ import annotations

from owaction.auth import PERMISSION_EXECUTE
from owaction.rest.api import ApiBlueprint, call_context, service
from owaction.rest.schemas import ExecuteRequest, ModuleResponse

bp = ApiBlueprint("commands", __name__, tag="waddlebot", url_prefix="/api/v1")


@bp.operation("POST", "/execute", summary="Run a WaddleBot #command",
              permission=PERMISSION_EXECUTE, service_key=True, body=ExecuteRequest,
              responses={200: (ModuleResponse, "the reply for the chat, success or not")},
              errors=(429, 503))
def execute(claims, body: ExecuteRequest):
    args = " ".join(body.args) if isinstance(body.args, list) else body.args
    reply = service().execute_command(
        call_context(claims), command=body.command, args=args, user_id=body.user_id,
        entity_id=body.entity_id, community_id=body.community_id, session_id=body.session_id,
        message=body.message,
    )
    return ModuleResponse.model_validate(reply), 200
