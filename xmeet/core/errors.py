# -*- test-case-name: tests.test_core_im -*-
"""
The stable C{code} strings of the error object of PROTOCOL.md sections 3
and 4, C{{"statusCode": N, "error": {"code": str, "message": str}}}.

Socket.IO acks and HTTP answers carry the same object, so both front ends
take the code of a status from this one mapping; clients may rely on the
codes, which never change once published.
"""

from __future__ import annotations

__all__ = ["ERROR_CODES", "error_code"]

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    426: "upgrade_required",
    429: "rate_limited",
    503: "unavailable",
}


def error_code(status: int) -> str:
    """
    The C{code} of an error with HTTP-like status C{status}; C{"error"}
    for a status without its own code.
    """
    return ERROR_CODES.get(status, "error")
