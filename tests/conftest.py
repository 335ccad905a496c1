"""Shared test configuration: the control-plane fixtures and hypothesis profiles.

tests/ is on sys.path here (pytest's rootdir-relative import mode), so shared
fixture modules import by their plain names.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from e2e_fixtures import *  # noqa: F401,F403

# Property tests run a fixed, generous number of examples; deadlines are off
# because CI machines are shared and a slow example is not a wrong one.
settings.register_profile("default", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "default")
