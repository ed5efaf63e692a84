"""Kubernetes object names, checked before any of them becomes part of a URL or a path.

A name is the last segment of the URL skewmit builds (``.../deployments/<name>``) and part of
the evidence bundle's file names: ``x/../../deployments/llm-serve`` would reach another object,
``gpu-a10g-1/../gpu-h100-1`` another node. The API server's own rules (apimachinery's
``IsDNS1123Label``/``IsDNS1123Subdomain``/``IsDNS1035Label``) say which names can exist; a name
outside them cannot name a real object, so refusing it loses nothing.
"""

from __future__ import annotations

import re

from services.errors import ConfigError

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_MAX = 63
SUBDOMAIN_MAX = 253
# Kinds whose names the API server validates as a DNS-1123 label (Namespace) or DNS-1035 label
# (Service); every other kind skewmit touches takes a DNS-1123 subdomain.
LABEL_KINDS = frozenset({"Namespace"})
LABEL_1035_KINDS = frozenset({"Service"})


def is_dns1123_label(name: str) -> bool:
    """Lower-case alphanumerics and '-', starting and ending alphanumeric, at most 63."""
    return len(name) <= LABEL_MAX and bool(_LABEL.fullmatch(name))


def is_dns1035_label(name: str) -> bool:
    """A DNS-1123 label that starts with a letter (Service names)."""
    return len(name) <= LABEL_MAX and bool(_LABEL_1035.fullmatch(name))


def is_dns1123_subdomain(name: str) -> bool:
    """Dot-separated DNS-1123 labels, at most 253 characters in all."""
    return len(name) <= SUBDOMAIN_MAX and bool(_SUBDOMAIN.fullmatch(name))


def _shown(name: str) -> str:
    # repr() makes control characters and quotes visible in the message.
    return repr(name[:80] + ("..." if len(name) > 80 else ""))


def check_name(kind: str, name: str, *, flag: str = "") -> str:
    """`name` itself when it is a valid name for an object of `kind`.

    Raises ConfigError saying which rule it breaks (and, with `flag`, which option to fix).
    """
    where = f" (check {flag})" if flag else ""
    if kind in LABEL_KINDS:
        ok, rule = is_dns1123_label(name), "a DNS-1123 label"
    elif kind in LABEL_1035_KINDS:
        ok, rule = is_dns1035_label(name), "a DNS-1035 label"
    else:
        ok, rule = is_dns1123_subdomain(name), "a DNS-1123 subdomain"
    if ok:
        return name
    limit = SUBDOMAIN_MAX if rule.endswith("subdomain") else LABEL_MAX
    dots = "" if rule.endswith("label") else " and '.'"
    raise ConfigError(
        f"{_shown(name)} is not a valid {kind.lower()} name{where}: Kubernetes names are "
        f"{rule} (lower-case letters, digits, '-'{dots}; at most {limit} characters), so no "
        f"{kind.lower()} can be called that"
    )


def check_namespace(namespace: str, *, flag: str = "") -> str:
    """`namespace` when it is a valid namespace name. Raises ConfigError otherwise."""
    return check_name("Namespace", namespace, flag=flag)
