"""Fixtures for the controller's tests (helpers that tests import live in running_pods.py)."""

from __future__ import annotations

import pytest
from running_pods import shipped_policy

from policy.model import Policy


@pytest.fixture(scope="module")
def policy() -> Policy:
    """The shipped policy, as the controller's decision reads it."""
    return shipped_policy()
