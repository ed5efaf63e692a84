"""API errors shaped like the real kube-apiserver's `Status` objects."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the server answers with a `Status` body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        name: str = "",
        group: str = "",
        kind: str = "",
        causes: list[dict[str, str]] | None = None,
        with_details: bool = False,
        retry_after_s: int = 0,
    ) -> None:
        super().__init__(message)
        # Errors built with a StatusDetails (NotFound, generic responses) send `details` even
        # when it is empty; kubectl debug dereferences it.
        self.with_details = with_details
        self.retry_after_s = retry_after_s
        self.code = code
        self.reason = reason
        self.message = message
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = causes or []

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:  # omitempty: an error of unknown cause carries no reason at all
            body["reason"] = self.reason
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = self.causes
        if self.retry_after_s:
            details["retryAfterSeconds"] = self.retry_after_s
        if details or self.with_details:
            body["details"] = details
        body["code"] = self.code
        return body


def qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(resource, group)} "{name}" not found',
        name=name,
        group=group,
        kind=resource,
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(resource, group)} "{name}" already exists',
        name=name,
        group=group,
        kind=resource,
    )


def conflict(resource: str, group: str, name: str, why: str = "") -> ApiError:
    why = why or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        name=name,
        group=group,
        kind=resource,
    )


# field.ErrorType's text (the start of each message) and its StatusCause reason.
_CAUSE_REASONS = (
    ("Required value", "FieldValueRequired"),
    ("Duplicate value", "FieldValueDuplicate"),
    ("Unsupported value", "FieldValueNotSupported"),
    ("Forbidden", "FieldValueForbidden"),
    ("Too long", "FieldValueTooLong"),
    ("Too many", "FieldValueTooMany"),
    ("Internal error", "InternalError"),
    ("Invalid value", "FieldValueInvalid"),
)


def cause_reason(message: str) -> str:
    """The StatusCause reason of a field error, from the type its message starts with."""
    for prefix, reason in _CAUSE_REASONS:
        if message.startswith(prefix):
            return reason
    return "FieldValueInvalid"


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid; causes are (field, message) pairs, message already saying what is wrong
    and starting with its error type ("Invalid value: ...", "Required value", ...)."""
    qualified_kind = f"{kind}.{group}" if group else kind
    joined = ", ".join(f"{field}: {msg}" for field, msg in causes)
    if len(causes) > 1:
        joined = "[" + joined + "]"
    return ApiError(
        422,
        "Invalid",
        f'{qualified_kind} "{name}" is invalid: {joined}',
        name=name,
        group=group,
        kind=kind,
        causes=[{"reason": cause_reason(m), "message": m, "field": f} for f, m in causes],
    )


def forbidden(
    user: str,
    verb: str,
    resource: str,
    group: str,
    namespace: str,
    name: str = "",
    subresource: str = "",
) -> ApiError:
    # The subject is the resource alone; only the sentence names the subresource.
    full = f"{resource}/{subresource}" if subresource else resource
    subject = f'{qualified(resource, group)} "{name}"' if name else qualified(resource, group)
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    return ApiError(
        403,
        "Forbidden",
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{full}" '
        f'in API group "{group}"{scope}',
        name=name,
        group=group,
        kind=resource,
    )


# The reason a real server gives each status code it answers on its own.
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_MESSAGES = {
    429: "Too many requests, please try again later.",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still be "
    "processing the request",
}


def injected(code: int, retry_after_s: int = 1) -> ApiError:
    """An error of status `code` as the real server phrases it (fault injection). A 429 says
    when to retry, in its Retry-After header and details.retryAfterSeconds (unless
    `retry_after_s` is 0)."""
    message = _MESSAGES.get(code, f"Internal error occurred: injected fault ({code})")
    if code < 500 and code not in _MESSAGES:
        message = f"injected fault ({code})"
    retry = retry_after_s if code == 429 else 0
    return ApiError(code, _REASONS.get(code, ""), message, retry_after_s=retry)


def no_route() -> ApiError:
    """The 404 for a path the server does not serve (NewNotFound with empty details)."""
    return ApiError(
        404, "NotFound", "the server could not find the requested resource", with_details=True
    )


def patch_rejected() -> ApiError:
    """A JSON patch that does not apply (a failed `test` included): apiserver answers
    NewGenericServerResponse(422), which keeps none of the patch library's words."""
    return ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        with_details=True,
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unsupported_media(message: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)
