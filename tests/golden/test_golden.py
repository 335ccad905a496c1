"""The injection engine's output for the examples and the odd pod shapes, against the golden files.

A failure prints what changed; when the change is intended, ``make golden``
regenerates the files and shows the same diff for review.
"""

from __future__ import annotations

import pytest
from golden_cases import Case, cases, differences


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_engine_output_means_what_the_golden_file_says(case: Case) -> None:
    diff = differences(case)
    assert not diff, f"the engine's output changed (run `make golden` if that is intended):\n{diff}"
