"""One error model: domain exceptions carry their HTTP status and a stable code."""

from typing import Any


class TelemetraError(Exception):
    """Base of every error a client may see. Rendered as application/problem+json."""

    status = 500
    code = "internal_error"
    title = "Internal Server Error"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.detail)


class Invalid(TelemetraError):
    status = 422
    code = "validation_error"
    title = "Validation Error"

    def __init__(self, detail: str, *, loc: list[str | int] | None = None, **extra: Any) -> None:
        errors = extra.pop("errors", None) or [{"loc": loc or [], "msg": detail}]
        super().__init__(detail, errors=errors, **extra)


class BadRequest(TelemetraError):
    status = 400
    code = "bad_request"
    title = "Bad Request"


class Unauthorized(TelemetraError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **extra)


class Forbidden(TelemetraError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(TelemetraError):
    status = 404
    code = "not_found"
    title = "Not Found"


class MethodNotAllowed(TelemetraError):
    status = 405
    code = "method_not_allowed"
    title = "Method Not Allowed"


class Conflict(TelemetraError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(TelemetraError):
    status = 413
    code = "payload_too_large"
    title = "Payload Too Large"


class QuotaExceeded(TelemetraError):
    status = 403
    code = "quota_exceeded"
    title = "Quota Exceeded"


class PlanLimitReached(TelemetraError):
    """A count the organization's plan limits (devices, alert rules) is reached."""

    status = 409
    code = "quota_exceeded"
    title = "Quota Exceeded"


class RateLimited(TelemetraError):
    status = 429
    code = "rate_limited"
    title = "Too Many Requests"


class Unavailable(TelemetraError):
    status = 503
    code = "unavailable"
    title = "Service Unavailable"


class BadGateway(TelemetraError):
    """A service the platform called on the caller's behalf (an http_pull connector's
    upstream) failed; the detail names how."""

    status = 502
    code = "upstream_error"
    title = "Bad Gateway"


class QueryTimeout(TelemetraError):
    """A query stopped by its time limit: this request asked for more work than the limit
    allows now (a 503, not a 4xx: the same query may fit when the server is less busy)."""

    status = 503
    code = "query_timeout"
    title = "Query Timeout"
