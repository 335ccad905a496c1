"""The names a Service is reached by, and whether a certificate's SANs cover them.

Generation and inspection must agree on exactly this list, so it lives in one
place: the apiserver dials ``<svc>.<ns>.svc`` for a webhook's ``service``
reference, but people and other clients use the shorter and the fully
qualified forms too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _check_label(kind: str, value: str) -> None:
    if not _DNS_LABEL.match(value):
        raise ValueError(f"{kind} {value!r} is not a DNS-1123 label (lower case, digits, '-')")


def service_dns_names(service: str, namespace: str, cluster_domain: str = "cluster.local") -> list[str]:
    """``svc``, ``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.<cluster domain>``."""
    _check_label("service", service)
    _check_label("namespace", namespace)
    names = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc"]
    if cluster_domain:
        names.append(f"{service}.{namespace}.svc.{cluster_domain.strip('.')}")
    return names


def dns_name_covered(name: str, sans: Iterable[str]) -> bool:
    """RFC 6125 matching: exact (case-insensitive), or a ``*`` standing for one whole left label."""
    name = name.rstrip(".").lower()
    for san in sans:
        san = san.rstrip(".").lower()
        if san == name:
            return True
        if san.startswith("*.") and "." in name and name.split(".", 1)[1] == san[2:]:
            return True
    return False


def ip_covered(ip: str, sans: Iterable[str]) -> bool:
    """Compare parsed addresses so ``::1`` and ``0:0::1`` are the same address."""
    wanted = ipaddress.ip_address(ip)
    return any(ipaddress.ip_address(san) == wanted for san in sans)
