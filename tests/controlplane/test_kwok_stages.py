"""The fake kubelet's stages as data: what a kubelet version may do, and the config file.

The behaviour itself is asserted against the real apiserver in test_kwok.py;
these pin the rules that decide which behaviour a node gets.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlplane import kwok


@pytest.mark.parametrize(
    ("version", "sidecar_restart", "resources"),
    [
        ("v1.31.0", False, False),
        ("v1.32.0", True, False),
        ("v1.33.1", True, True),
        ("v1.36.3", True, True),
        ("1.40", True, True),
    ],
)
def test_a_kubelets_abilities_follow_its_version(
    version: str, sidecar_restart: bool, resources: bool
) -> None:
    profile = kwok.KubeletProfile.for_version(version)
    assert profile.restarts_sidecar_on_image_change is sidecar_restart
    assert profile.reports_resources is resources


def test_only_a_136_kubelet_declares_features() -> None:
    assert kwok.KubeletProfile.for_version("v1.35.2").declared_features == ()
    profile = kwok.KubeletProfile.for_version("v1.36.3")
    assert profile.resizes_pod_level_resources
    assert "InPlacePodVerticalScalingInitContainers" in profile.declared_features


def test_a_bad_version_is_named() -> None:
    with pytest.raises(ValueError, match="'latest'"):
        kwok.parse_version("latest")


@pytest.mark.parametrize(
    ("text", "millis"), [("500m", 500), ("4", 4000), ("1.5", 1500), ("0.0001", 1), ("2k", 2_000_000)]
)
def test_cpu_quantities(text: str, millis: int) -> None:
    assert kwok.cpu_millis(text) == millis


@pytest.mark.parametrize(("text", "size"), [("8Gi", 8 << 30), ("512Mi", 512 << 20), ("1G", 10**9), ("100", 100)])
def test_memory_quantities(text: str, size: int) -> None:
    assert kwok.memory_bytes(text) == size


def test_a_bad_quantity_is_named() -> None:
    with pytest.raises(ValueError, match="'8 GiB'"):
        kwok.memory_bytes("8 GiB")


def _node(name: str, version: str = "v1.36.3") -> kwok.FakeNode:
    return kwok.FakeNode(name, 4000, 8 << 30, kwok.KubeletProfile.for_version(version))


def test_the_config_file_holds_one_stage_set_per_node(tmp_path: Path) -> None:
    stages = kwok.StageSet({"a": _node("a"), "b": _node("b", "v1.31.0")})
    path = kwok.write_config(tmp_path / "stages.yaml", stages)
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs == stages.documents()
    names = [d["metadata"]["name"] for d in docs]
    assert len(names) == len(set(names))
    assert all(d["apiVersion"] == "kwok.x-k8s.io/v1alpha1" and d["kind"] == "Stage" for d in docs)
    per_node = {n.split(".", 1)[1] for n in names if "." in n}
    assert per_node == {"a", "b"}
    for d in docs:
        if d["spec"]["resourceRef"]["kind"] != "Pod":
            continue
        node = d["metadata"]["name"].split(".", 1)[1]
        (term,) = d["spec"]["selector"]["matchExpressions"]
        # Every pod stage is bound to its node, and patches only status.
        assert f'"{node}" as $node' in term["jq"]["key"]
        for step in d["spec"]["steps"]:
            if "patch" in step:
                assert step["patch"]["subresource"] == "status"
                assert step["patch"]["type"] == "strategic"


def test_an_old_kubelets_stages_do_not_restart_sidecars_or_report_resources() -> None:
    (old,) = [d for d in kwok.pod_stages(_node("old", "v1.31.0"), kwok.Timing())
              if d["metadata"]["name"].startswith("pod-start.")]
    template = old["spec"]["steps"][0]["patch"]["template"]
    assert '"allocatedResources"' not in template
    (new,) = [d for d in kwok.pod_stages(_node("new"), kwok.Timing())
              if d["metadata"]["name"].startswith("pod-start.")]
    assert '"allocatedResources"' in new["spec"]["steps"][0]["patch"]["template"]
    selector = {
        d["metadata"]["name"].split(".")[0]: d["spec"]["selector"]["matchExpressions"][0]["jq"]["key"]
        for d in kwok.pod_stages(_node("old", "v1.31.0"), kwok.Timing())
    }
    assert "false as $sidecars" in selector["container-image-change"]
    assert "false as $reports" in selector["resize-start"]
