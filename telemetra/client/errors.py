"""What the SDK raises: the platform's problem+json answers, and an unreachable platform."""

from typing import Any

# Answers worth trying again: rate limited, and the server or a proxy in front of it failing.
# Retrying a readings POST is safe because readings keep their time (a retry of what was in
# fact stored comes back as duplicates, never as a second copy).
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class ClientError(Exception):
    """Base class of everything ``telemetra.client`` raises."""


class ApiError(ClientError):
    """The platform answered with an error (``application/problem+json``).

    ``code`` is the platform's stable code (``not_found``, ``validation_error``,
    ``rate_limited``, ...), ``problem`` the whole body, ``retry_after`` the seconds from a
    ``Retry-After`` header, if any."""

    def __init__(self, status: int, code: str | None, detail: str,
                 problem: dict[str, Any] | None = None, retry_after: float | None = None):
        super().__init__(f"{status} {code or 'error'}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.problem = problem or {}
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES


class Unreachable(ClientError):
    """The platform (or the MQTT broker) could not be reached, or did not answer in time."""

    retryable = True


class Closed(ClientError):
    """The client was closed while it was waiting to try again."""
