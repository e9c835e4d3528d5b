"""Domain errors of the action service, and how each front door reports them.

The service raises only these. REST turns one into ``http_status`` with the body
``{"error": {"code": code, "message": message}, "request_id": ..., "execution_id"?: ...}``;
gRPC aborts with ``grpc_status`` and the same message. Adding a case here is the only change
needed to report it the same way on both doors.

    ServiceError
    ├── InvalidInput            400  INVALID_ARGUMENT
    │   └── PayloadTooLarge     413  INVALID_ARGUMENT
    ├── Unauthenticated         401  UNAUTHENTICATED
    ├── PermissionDenied        403  PERMISSION_DENIED
    ├── NotFound                404  NOT_FOUND
    ├── Conflict                409  ALREADY_EXISTS
    ├── IdempotencyMismatch     422  FAILED_PRECONDITION
    ├── Throttled               429  RESOURCE_EXHAUSTED   (retry_after)
    ├── UpstreamFailure         502  UNAVAILABLE          (OpenWhisk answered nonsense / 500)
    ├── Unavailable             503  UNAVAILABLE          (retry_after; OpenWhisk or DB down,
    │                                                      breaker open)
    └── UpstreamTimeout         504  DEADLINE_EXCEEDED
"""

from __future__ import annotations


class ServiceError(Exception):
    http_status = 500
    grpc_status = "INTERNAL"  # a grpc.StatusCode member name; REST never imports grpc
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        execution_id: str | None = None,
        details: dict | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.retry_after = retry_after
        self.execution_id = execution_id
        self.details = details or {}

    def to_body(self, request_id: str | None = None) -> dict:
        body: dict = {"error": {"code": self.code, "message": self.message}}
        if self.details:
            body["error"]["details"] = self.details
        body["request_id"] = request_id
        if self.execution_id:
            body["execution_id"] = self.execution_id
        return body


class InvalidInput(ServiceError):
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"
    code = "invalid_request"


class PayloadTooLarge(InvalidInput):
    http_status = 413
    code = "payload_too_large"


class Unauthenticated(ServiceError):
    http_status = 401
    grpc_status = "UNAUTHENTICATED"
    code = "unauthenticated"


class PermissionDenied(ServiceError):
    http_status = 403
    grpc_status = "PERMISSION_DENIED"
    code = "permission_denied"


class NotFound(ServiceError):
    http_status = 404
    grpc_status = "NOT_FOUND"
    code = "not_found"


class Conflict(ServiceError):
    http_status = 409
    grpc_status = "ALREADY_EXISTS"
    code = "conflict"


class IdempotencyMismatch(ServiceError):
    http_status = 422
    grpc_status = "FAILED_PRECONDITION"
    code = "idempotency_key_reused"


class Throttled(ServiceError):
    http_status = 429
    grpc_status = "RESOURCE_EXHAUSTED"
    code = "throttled"


class UpstreamFailure(ServiceError):
    # gRPC's own HTTP mapping reads 502 as UNAVAILABLE; INTERNAL would blame this server.
    http_status = 502
    grpc_status = "UNAVAILABLE"
    code = "openwhisk_error"


class Unavailable(ServiceError):
    http_status = 503
    grpc_status = "UNAVAILABLE"
    code = "unavailable"


class UpstreamTimeout(ServiceError):
    http_status = 504
    grpc_status = "DEADLINE_EXCEEDED"
    code = "openwhisk_timeout"
