"""donation.plan: who gives how much so the pod's aggregate returns to the owner's ``A``.

Each pod is written out with its requests (CPU only; memory is asked by nobody, so
no memory moves), and each expected donation is worked out by hand beside it.
"""

from __future__ import annotations

import pytest
from podshapes import container

from policy.donation import Donation, plan

M = 10**6  # nano-cores in a millicore


def spec(containers: list[dict], inits: list[dict] | None = None) -> dict:
    return {"containers": containers, "initContainers": inits or []}


def cpu(name: str, value: str, restart: str | None = None) -> dict:
    return container(name, {"cpu": value}, restart=restart)


def goal(cpu_nanos: int) -> dict[str, int]:
    return {"cpu": cpu_nanos, "memory": 0}


# the owner's log shipper (a native sidecar), meshfit's mesh, and the app: 100m + 200m + 900m
WITH_LOG = spec([cpu("app", "900m")], [cpu("mesh", "200m", "Always"), cpu("log", "100m", "Always")])


def test_the_owners_native_sidecars_give_with_the_app_unless_told_not_to() -> None:
    # main phase 1200m against A = 1000m: 200m, split 900:100 -> app 180m, log 20m
    assert plan(WITH_LOG, goal(1000 * M), {"mesh"}) == [
        Donation("containers", 0, "cpu", 180 * M), Donation("initContainers", 1, "cpu", 20 * M)]
    # carve: only the app gives, all 200m
    assert plan(WITH_LOG, goal(1000 * M), {"mesh"}, own_sidecars_donate=False) == [
        Donation("containers", 0, "cpu", 200 * M)]


@pytest.mark.parametrize(("target", "donations"), [
    (1200 * M, []),                                              # within the goal: nobody gives
    (1200 * M - 1, [Donation("containers", 0, "cpu", 1)]),       # one nano-core over: the app gives it
])
def test_the_main_phase_gives_from_one_nano_unit_over_the_goal(target: int, donations: list[Donation]) -> None:
    # the 1n goes to the largest donor, the app (900m against the log shipper's 100m)
    assert plan(WITH_LOG, goal(target), {"mesh"}) == donations


def test_a_regular_init_container_after_the_sidecars_gives_what_is_left_after_the_main_phase() -> None:
    # A = max(app 900m + log 100m, migrate 1000m + log 100m) = 1100m. Main phase with the mesh:
    # 1200m, 100m over -> app 90m, log 10m (log now 90m). Init phase of migrate: 1000m + mesh 200m
    # + log 90m = 1290m, 190m over -> migrate gives 190m.
    s = spec([cpu("app", "900m")],
             [cpu("mesh", "200m", "Always"), cpu("log", "100m", "Always"), cpu("migrate", "1")])
    assert plan(s, goal(1100 * M), {"mesh"}) == [
        Donation("containers", 0, "cpu", 90 * M), Donation("initContainers", 1, "cpu", 10 * M),
        Donation("initContainers", 2, "cpu", 190 * M)]


@pytest.mark.parametrize(("target", "donations"), [
    (1200 * M, []),                                                    # init phase 1000m + 200m: at the goal
    (1200 * M - 1, [Donation("initContainers", 1, "cpu", 1)]),         # one nano-core over
    (100 * M, [Donation("containers", 0, "cpu", 100 * M), Donation("initContainers", 1, "cpu", 1000 * M)]),
])
def test_a_regular_init_container_gives_from_one_nano_unit_over_and_at_most_all_it_asks(
        target: int, donations: list[Donation]) -> None:
    # mesh 200m beside migrate 1000m; the app's 100m + mesh 200m main phase is 300m. At a goal of
    # 100m the app gives 200m -> only its 100m, and migrate gives 1100m over -> only its 1000m.
    s = spec([cpu("app", "100m")], [cpu("mesh", "200m", "Always"), cpu("migrate", "1")])
    assert plan(s, goal(target), {"mesh"}) == donations


def test_an_injected_container_never_gives_whatever_its_kind() -> None:
    # a regular init container meshfit added (1200m with the mesh, 1100m over) gives nothing
    s = spec([cpu("app", "100m")], [cpu("mesh", "200m", "Always"), cpu("mesh-init", "1")])
    assert plan(s, goal(300 * M), {"mesh", "mesh-init"}) == []
