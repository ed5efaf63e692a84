"""The project's exceptions. Every message says what happened and what to do next."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any


class SkewmitError(Exception):
    """Base of every error skewmit reports to an operator."""


class ConfigError(SkewmitError):
    """Bad input: kubeconfig, context, config file, a flag or a value out of range."""


class NotFoundError(SkewmitError):
    """A namespace, deployment, pod, revision... that does not exist."""


class ForbiddenError(SkewmitError):
    """The kube user may not do this (RBAC)."""


class ConflictError(SkewmitError):
    """The object changed since it was read; nothing was applied."""


class UnreachableError(SkewmitError):
    """The API server or Prometheus cannot be reached."""


class InvalidError(SkewmitError):
    """The server refused the change as invalid (422), or the plan makes no sense."""


class GitOpsError(SkewmitError):
    """A GitOps controller owns the object; a manual change would be reverted."""


class CertificateError(UnreachableError):
    """TLS verification of the API server failed: the CA in the kubeconfig does not sign the
    server's certificate (or the server URL names another host)."""


class ThrottledError(SkewmitError):
    """The API server answered 429 Too Many Requests; `retry_after_s` is when to try again
    (None when the server did not say)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServerError(SkewmitError):
    """The API server answered 5xx; `request` names the method and path that failed."""

    def __init__(self, message: str, status: int = 0, request: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.request = request


# --- from the API server's answers to these exceptions ------------------------------------


def retry_after(headers: Any, body: Any) -> float | None:
    """Seconds to wait before retrying, from a Retry-After header (seconds or an HTTP date)
    or the Status' details.retryAfterSeconds; None when the server did not say."""
    value = None
    if headers is not None:
        try:
            value = headers.get("Retry-After")
        except AttributeError:
            value = None
    if value:
        text = str(value).strip()
        if text.isdigit():
            return float(text)
        from email.utils import parsedate_to_datetime  # here: ~10 ms, off the first frame's path

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    details = body.get("details") if isinstance(body, dict) else None
    seconds = details.get("retryAfterSeconds") if isinstance(details, dict) else None
    if isinstance(seconds, int | float) and seconds >= 0:
        return float(seconds)
    return None


def from_status(
    status: int, reason: str, raw_body: Any, headers: Any, what: str, request: str = ""
) -> SkewmitError:
    """The project's exception for an API server's error answer (status, reason phrase, Status
    body, headers), keeping the server's own words. `what` says what skewmit was doing;
    `request` ("PATCH /apis/apps/v1/...") is named in server errors and throttling."""
    message = reason or ""
    raw_body = raw_body or "{}"
    handshake = re.match(r"Handshake status (\d+)", message)
    if handshake:
        # A refused websocket upgrade (exec): the Status body is the last "-+-+-" segment.
        status = int(handshake.group(1))
        tail = message.split("-+-+-")[-1].strip()
        raw_body = tail[2:-1] if tail.startswith(("b'", 'b"')) else tail
        message = f"the API server refused the exec ({status})"
    body: Any = None
    try:
        body = json.loads(raw_body)
        message = body.get("message") or message
    except (ValueError, TypeError, AttributeError):
        pass
    if status == 404:
        return NotFoundError(f"{what}: {message}. Check the name and namespace (-n).")
    if status in (401, 403):
        return ForbiddenError(
            f"{what}: {message}. Ask for the permission or use a context whose user has it."
        )
    if status == 409:
        return ConflictError(f"{what}: {message}. Nothing was applied; refresh and retry.")
    if status in (400, 415, 422):
        return InvalidError(f"{what}: {message}")
    via = f" ({request})" if request else ""
    if status == 429:
        wait = retry_after(headers, body)
        when = (
            f"retry in {wait:.0f} s (the server's Retry-After)"
            if wait is not None
            else "retry in a few seconds"
        )
        return ThrottledError(
            f"{what}{via}: the API server is throttling requests (429 Too Many Requests: "
            f"{message}); {when}, and ask its operators about API priority and fairness if "
            "it persists",
            wait,
        )
    if status >= 500:
        return ServerError(
            f"{what}: the API server failed the request {request or what} with {status}: "
            f"{message}. The server (or a webhook or aggregated API behind it) is at fault, "
            "not the request; retry, and check the API server's health if it persists",
            status,
            request,
        )
    return SkewmitError(f"{what}{via}: the API server answered {status}: {message}")


def tls_failure(exc: BaseException) -> str:
    """The TLS verification error inside a transport exception, or ""."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        text = f"{node.__class__.__name__}: {node}"
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            found = re.search(r"certificate verify failed:?[^'\")\n]*", text)
            return found.group(0).strip() if found else "certificate verify failed"
        if "SSLCertVerificationError" in text:
            return text
        reason = getattr(node, "reason", None)
        node = reason if isinstance(reason, BaseException) else (node.__cause__ or node.__context__)
    return ""
