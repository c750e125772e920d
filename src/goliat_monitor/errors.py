"""Errors that carry the HTTP status they deserve; raised by queries, turned into JSON by the app."""

from __future__ import annotations


class ApiError(Exception):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401


class Forbidden(ApiError):
    """Signed in (or a valid token), but the role may not do this."""

    status_code = 403


class RateLimited(ApiError):
    """Too many failed sign-ins: answered as 429 with `Retry-After`."""

    status_code = 429

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class TooLarge(ApiError):
    status_code = 413


class UnsupportedMediaType(ApiError):
    status_code = 415


class DatabaseUnavailable(ApiError):
    """The database cannot be reached right now (restarting, failing over, cut off).

    Nothing of the request is known to be stored; answered as 503 with `Retry-After`, which the
    bridge and the agent treat as "keep it and send it again later".
    """

    status_code = 503

    def __init__(self, message: str = "The database is unavailable; retry later", *, retry_after_s: int = 2):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InsufficientStorage(ApiError):
    """A disk ran out of space: answered as 507 with what ran out (`ranOut`: "database", "data
    folder" or "temporary folder"). Nothing of the request is stored; 5xx means "send it again
    later" to the bridge and the agent, and writes succeed again once there is room."""

    status_code = 507

    def __init__(self, ran_out: str, *, path: str | None = None, detail: str = "") -> None:
        where = f" ({path})" if path else ""
        super().__init__(
            f"Insufficient storage: the {ran_out}{where} has no space left{detail}; nothing of this "
            "request was stored. Free some space; writes resume by themselves."
        )
        self.ran_out = ran_out
        self.path = path
