"""The project's exceptions. Every message says what happened and what to do next."""

from __future__ import annotations


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
