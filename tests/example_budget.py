"""How many examples a property test with its own, larger budget runs.

A test that sets ``max_examples`` above the profile's overrides the profile,
so under mutation testing (where every mutant reruns it) it would cost its full
budget per mutant; ``examples(n)`` gives the mutation profile's count there and
``n`` everywhere else.
"""

from __future__ import annotations

import os

#: The "mutation" profile's count (tests/conftest.py).
MUTATION_EXAMPLES = 40


def examples(n: int) -> int:
    """``n``, or :data:`MUTATION_EXAMPLES` while a mutant is under test."""
    return MUTATION_EXAMPLES if os.environ.get("MUTANT_UNDER_TEST") else n
