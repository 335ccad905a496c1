"""What benchmark 3 hands the scheduler: its extenders entries and the pods of the mixed fleet (no cluster needed)."""

from __future__ import annotations

from bench import scheduling
from controlplane.meshfit_servers import shipped_extender_config

URL = "http://127.0.0.1:9"


def test_the_full_configuration_is_the_shipped_entry() -> None:
    assert scheduling.extender_entry(scheduling.MESHFIT, URL) == shipped_extender_config(URL)
    assert scheduling.extender_entry(scheduling.NOOP, URL) == shipped_extender_config(URL)


def test_fewer_verbs_drop_exactly_those_verbs() -> None:
    full = shipped_extender_config(URL)
    only = scheduling.extender_entry(scheduling.FILTER_ONLY, URL)
    assert {k: v for k, v in full.items() if k not in ("prioritizeVerb", "bindVerb")} == only
    both = scheduling.extender_entry(scheduling.FILTER_PRIORITIZE, URL)
    assert both["filterVerb"] == "filter" and both["prioritizeVerb"] == "prioritize" and "bindVerb" not in both
    bind = scheduling.extender_entry(scheduling.FILTER_BIND, URL)
    assert {k: v for k, v in full.items() if k != "prioritizeVerb"} == bind


def test_the_second_scheduler_entry_is_not_ignorable_and_managed_names_the_resource() -> None:
    assert scheduling.extender_entry(scheduling.MIX_SECOND, URL)["ignorable"] is False
    assert shipped_extender_config(URL)["ignorable"] is True
    managed = scheduling.extender_entry(scheduling.MIX_MANAGED, URL)
    assert managed["managedResources"] == [{"name": "meshfit.io/extender", "ignoredByScheduler": True}]


def _meshed(pod: dict[str, object]) -> bool:
    return "meshfit.io/accounting" in (pod["metadata"].get("annotations") or {})  # type: ignore[attr-defined]


def test_the_mixed_fleet_is_thirty_percent_meshed_as_each_wiring_needs() -> None:
    for config in scheduling.MIXED_CONFIGS:
        pods = scheduling.mixed_pods("ns", 100, "p", config)
        assert len({p["metadata"]["name"] for p in pods}) == 100
        meshed = [p for p in pods if _meshed(p)]
        assert len(meshed) == 30
        plain = [p for p in pods if not _meshed(p)]
        for pod in meshed:
            spec = pod["spec"]
            assert spec.get("schedulerName", "default-scheduler") == (
                "meshfit-scheduler" if config.second else "default-scheduler")
            limits = spec["containers"][0]["resources"]["limits"]
            assert (limits.get("meshfit.io/extender") == "1") is config.managed
        for pod in plain:
            assert pod["spec"].get("schedulerName", "default-scheduler") == "default-scheduler"
            assert len(pod["spec"]["containers"]) == 2  # the app and its log shipper, no sidecar
            assert all("meshfit.io/extender" not in (c["resources"].get("limits") or {})
                       for c in pod["spec"]["containers"])
