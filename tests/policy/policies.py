"""Policies for tests: the shipped default, and variants of it."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import Any

from policy.load import load_policy_file
from policy.model import Policy

DEFAULT_POLICY_FILE = Path(__file__).resolve().parents[2] / "manifests" / "policy.yaml"


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    return load_policy_file(DEFAULT_POLICY_FILE)


def with_resources(policy: Policy | None = None, **changes: Any) -> Policy:
    policy = policy or default_policy()
    return dataclasses.replace(policy, resources=dataclasses.replace(policy.resources, **changes))


def with_injection(policy: Policy | None = None, **changes: Any) -> Policy:
    policy = policy or default_policy()
    return dataclasses.replace(policy, injection=dataclasses.replace(policy.injection, **changes))
