"""``meshfit --version``: the package and the two formats a cluster keeps.

An upgrade has to know more than the package version: the policy ConfigMaps
in a cluster are written against a policy schema ``apiVersion``, and every
injected pod carries an accounting record with its own version number. Both
are printed so an operator can tell whether a new release reads what the old
one wrote.
"""

from __future__ import annotations

from importlib import metadata


def text() -> str:
    from policy.model import API_VERSION
    from policy.record import RECORD_VERSION

    try:
        version = metadata.version("meshfit")
    except metadata.PackageNotFoundError:  # a checkout on sys.path, never installed
        version = "unknown (not installed)"
    return (f"meshfit {version}\n"
            f"policy schema {API_VERSION}\n"
            f"accounting record v{RECORD_VERSION} (meshfit.io/accounting)")
