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
# Under mutation testing every mutant reruns the property tests: fewer examples, the same
# fixed ones each time (so a mutant's verdict does not depend on the draw), no example database.
settings.register_profile("mutation", max_examples=40, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))
if os.environ.get("MUTANT_UNDER_TEST"):
    settings.load_profile("mutation")
else:
    settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "default")
