"""The contingency playbook names switches the example policy declares, with values it allows."""

from __future__ import annotations

import re
from pathlib import Path

from policy.load import load_policy_file

REPO = Path(__file__).resolve().parents[2]


def test_every_switch_of_the_playbook_is_declared_with_an_allowed_value() -> None:
    policy = load_policy_file(REPO / "manifests/examples/policy/runtime.yaml")
    text = (REPO / "docs/operations.md").read_text()
    playbook = text.split('<a id="contingency-playbook"></a>', 1)[1].split("\n## ", 1)[0]
    switches = re.findall(r"^\| [^|]+ \| `(\w+)=([\w]+)`", playbook, flags=re.M)
    assert len(switches) >= 6, switches
    for name, value in switches:
        owners = policy.runtime.sidecars_with(name)
        assert owners, f"the playbook's {name} is declared by no sidecar of the example policy"
        if value != "N":
            for owner in owners:
                assert policy.runtime.parameters[owner][name].check(value)[1] is None, (name, value, owner)
    (window,) = policy.fleet.freeze_windows
    assert dict(window.degrade) == {"lbListChanges": "frozen", "registryPush": "off"}
