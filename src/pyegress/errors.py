"""Errors the service raises, named with Twirp's error codes so every API dialect can map them."""

from __future__ import annotations

#: Twirp error code → HTTP status (Twirp spec v7, "Error codes").
TWIRP_STATUS = {
    "canceled": 408, "invalid_argument": 400, "malformed": 400, "deadline_exceeded": 408,
    "not_found": 404, "bad_route": 404, "already_exists": 409, "permission_denied": 403,
    "unauthenticated": 401, "resource_exhausted": 429, "failed_precondition": 412,
    "aborted": 409, "out_of_range": 400, "unimplemented": 501, "internal": 500,
    "unavailable": 503, "dataloss": 500, "unknown": 500,
}


class EgressError(Exception):
    """A request-level error: ``code`` is a Twirp code, ``msg`` says what is wrong,
    ``meta`` carries details such as the offending ``field``."""

    def __init__(self, code: str, msg: str, **meta: str) -> None:
        super().__init__(msg)
        self.code, self.msg, self.meta = code, msg, meta

    @property
    def http_status(self) -> int:
        return TWIRP_STATUS.get(self.code, 500)


def invalid(field: str, msg: str) -> EgressError:
    """An ``invalid_argument`` error naming ``field`` (in the message and in ``meta.argument``)."""
    return EgressError("invalid_argument", f"{field}: {msg}", argument=field)
