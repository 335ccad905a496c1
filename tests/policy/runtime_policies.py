"""The shipped policy with a ``runtime`` section, for the runtime parameters' tests."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from policies import DEFAULT_POLICY_FILE

from policy.load import parse_policy
from policy.model import Policy

RUNTIME: dict[str, Any] = {
    "maxDegradation": "1d",
    "sidecars": {
        "rpc-mesh": {
            "logLevel": {"type": "enum", "values": ["debug", "info", "warn", "error"], "default": "info"},
            "traceLog": {"type": "enum", "values": ["on", "off"], "default": "on"},
            "controlPlane": {"type": "enum", "values": ["normal", "degraded"], "default": "normal",
                             "namespaceOverride": False},
            "maxConnections": {"type": "int", "minimum": 1, "maximum": 100000, "default": 1000},
            "lbLongPolling": {"type": "bool", "default": True},
        },
        "msg-mesh": {
            "traceLog": {"type": "enum", "values": ["on", "off"], "default": "off"},
        },
    },
    "rules": [
        {"name": "checkout-debug", "apps": ["checkout"], "set": {"logLevel": "debug"}, "reason": "INC-1"},
        {"name": "eu-quiet", "zones": ["eu-1a"], "set": {"logLevel": "warn", "traceLog": "off"}},
        {"name": "pay-warn", "namespaces": ["pay"], "set": {"logLevel": "error"}},
    ],
}


def document(runtime: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """The shipped policy document with ``runtime`` (default :data:`RUNTIME`) and other top-level fields."""
    cm = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    doc: dict[str, Any] = yaml.safe_load(cm["data"]["policy.yaml"])
    doc["runtime"] = copy.deepcopy(RUNTIME if runtime is None else runtime)
    doc.update(top)
    return doc


def runtime_policy(runtime: dict[str, Any] | None = None, **top: Any) -> Policy:
    return parse_policy(document(runtime, **top))
