"""A fake kubelet for the local control plane: KWOK's controller and the Stages it plays.

The control plane has no kubelet, so without this nothing ever reports container
state: pods are bound and stay Pending, and the fleet operations (an image change
in a running pod, a resize) have nobody to answer them. KWOK's ``kwok`` controller
watches the pods on the nodes it manages and patches their status as a kubelet
would, following **Stages** (``kwok.x-k8s.io/v1alpha1``): a selector over the
object, an optional delay, and status patches rendered from a Go template.

KWOK ships default stages, but they treat every init container as one that runs to
completion, never report ``resources`` (so kube-apiserver refuses every resize of
such a pod) and ignore an image change. The stages here are meshfit's own, written
to the config file the controller reads at start. What they do, per fake node:

``pod-start``
    a bound pod becomes Running: regular init containers Completed, native sidecars
    (``restartPolicy: Always`` init containers) and containers running, started and
    ready, each with an ``imageID``, a ``containerID``, ``resources`` and
    ``allocatedResources``; a pod IP from the node's ``podCIDR``.
``container-image-change``
    a container or native sidecar whose spec image differs from its status image is
    restarted alone: the new image and imageID, ``restartCount`` + 1, ``lastState``
    terminated, running but not ready (the app and the other sidecars untouched).
``containers-ready``
    after ``ready_delay_ms``, running containers that are not ready become ready.
``crashloop``
    a container whose image contains :data:`BAD_IMAGE_MARKER` never stays up:
    ``state.waiting.reason: CrashLoopBackOff``, ``lastState.terminated`` with exit
    code 1, ``restartCount`` growing with a doubling back-off.
``resize-start`` / ``resize-actuate`` / ``resize-infeasible-*`` / ``resize-clear``
    a resize (``pods/NAME/resize`` changed a container's resources, so spec and
    ``status.containerStatuses[].resources`` differ): ``PodResizeInProgress`` and
    the new ``allocatedResources`` at once, then after ``resize_delay_ms`` the new
    ``resources`` and the condition gone. ``PodResizePending`` with reason
    ``Infeasible`` instead when the kubelet would refuse it: a CPU resize of a
    Guaranteed pod on a node with the ``static`` CPU manager policy, or new
    requests beyond the node's allocatable (which kube-apiserver 1.36 already
    refuses itself, with its ``PodResizeValidator`` admission plugin, so that
    stage answers only when the plugin is off). Conditions carry
    ``observedGeneration``, so a later resize is judged anew; a resize withdrawn
    (spec back to what runs) clears them.
``pod-delete``
    a pod being deleted (and without finalizers) goes away.
``pod-settled``
    any other live pod: a patch that changes nothing, so that KWOK, after a
    restart, knows which pod IPs are in use.

The stages for one pod exclude each other (KWOK picks at random among the stages
that match), in this order: an image change, then a resize, then readiness, then
the next crash.

Why one set of stages per node and not one for all: a pod stage sees only the pod,
and the kubelet's answers depend on its node: the allocatable a resize must fit,
its CPU manager policy and its kubelet version (:class:`KubeletProfile`: before
1.32 a sidecar's image change is ignored; before 1.33 no ``resources`` are
reported, so kube-apiserver refuses resizes; from 1.36 the node declares the
features that let kube-apiserver pass resizes of pod-level resources and of
regular init containers). So each node's facts are written
into its stages, and the controller is restarted (a fraction of a second) when a
fake node is added.

Selectors are jq (gojq, as KWOK runs it) with a shared prelude of definitions;
patches are strategic merge patches of ``status``. ``containerStatuses`` is an
atomic list, so every patch rewrites all of it, copying the entries it does not
change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

#: The label (value ``fake``) that marks a node as KWOK's to play; the controller
#: runs with ``--manage-nodes-with-label-selector`` on it and leaves every other
#: node (and its pods) alone.
NODE_LABEL = "kwok.x-k8s.io/node"
NODE_LABEL_VALUE = "fake"
#: An image whose reference contains this string crash-loops on a fake node.
BAD_IMAGE_MARKER = "crashloop"

#: Kubelet versions from which the fake kubelet behaves as the real one does:
#: - restarting a native sidecar alone when its image changes (kubernetes PR
#:   #126525; before it the kubelet ignored the change until the pod restarted).
#:   Checked in the kubelet's source: computeInitContainerActions in v1.32.0
#:   kills and restarts only the changed sidecar; v1.31.14, the last 1.31, does not;
#: - reporting ``status.containerStatuses[].resources``, without which
#:   kube-apiserver refuses ``pods/resize`` ("Pod running on node without support
#:   for resize"; InPlacePodVerticalScaling beta and on by default in 1.33).
SIDECAR_IMAGE_RESTART_SINCE = (1, 32)
RESIZE_SINCE = (1, 33)
#: From 1.36 a kubelet declares, in ``status.declaredFeatures`` (NodeDeclaredFeatures,
#: beta and on by default), the features whose gates are on; kube-apiserver refuses
#: a pod update that needs one its node does not declare ("pod update requires
#: features ... which are not available on node"). These are the ones a 1.36
#: kubelet with default gates declares (k8s.io/component-helpers/nodedeclaredfeatures).
DECLARED_FEATURES_SINCE = (1, 36)
DECLARED_FEATURES_1_36: tuple[str, ...] = (
    "ExtendWebSocketsToKubelet",
    "InPlacePodLevelResourcesVerticalScaling",
    "InPlacePodVerticalScalingInitContainers",
    "RestartAllContainersOnContainerExits",
)

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([a-zA-Z]*)$")
_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1), "m": Decimal("0.001"),
    "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
    "P": Decimal(10**15), "E": Decimal(10**18),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def _quantity(text: str) -> Decimal:
    m = _QUANTITY.match(text.strip())
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f"not a resource quantity: {text!r} (expected like 500m, 4, 8Gi)")
    return Decimal(m.group(1)) * _SUFFIX[m.group(2)]


def cpu_millis(text: str) -> int:
    """``"500m"`` → 500, ``"4"`` → 4000 (rounded up, as Kubernetes rounds milli-CPUs)."""
    return int((_quantity(text) * 1000).to_integral_value(rounding=ROUND_CEILING))


def memory_bytes(text: str) -> int:
    """``"8Gi"`` → 8589934592."""
    return int(_quantity(text).to_integral_value(rounding=ROUND_CEILING))


_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(version: str) -> tuple[int, int, int]:
    """``v1.36.3`` → ``(1, 36, 3)``; a ValueError names the bad string."""
    m = _VERSION.match(version)
    if not m:
        raise ValueError(f"not a kubelet version: {version!r} (expected like v1.36.3)")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


@dataclass(frozen=True)
class KubeletProfile:
    """What a node's (fake) kubelet can do, derived from its version."""

    version: str
    restarts_sidecar_on_image_change: bool
    reports_resources: bool
    declared_features: tuple[str, ...] = ()

    @property
    def resizes_pod_level_resources(self) -> bool:
        return "InPlacePodLevelResourcesVerticalScaling" in self.declared_features

    @classmethod
    def for_version(cls, version: str) -> KubeletProfile:
        v = parse_version(version)[:2]
        return cls(
            version=version,
            restarts_sidecar_on_image_change=v >= SIDECAR_IMAGE_RESTART_SINCE,
            reports_resources=v >= RESIZE_SINCE,
            declared_features=DECLARED_FEATURES_1_36 if v >= DECLARED_FEATURES_SINCE else (),
        )


@dataclass(frozen=True)
class FakeNode:
    """One node KWOK plays: its name, allocatable (cpu, memory in bytes) and kubelet."""

    name: str
    cpu_millis: int
    memory_bytes: int
    kubelet: KubeletProfile
    #: ``static`` makes the kubelet refuse CPU resizes of Guaranteed pods as
    #: Infeasible, as a real one with that CPU manager policy does.
    cpu_manager_policy: str = "none"


@dataclass(frozen=True)
class Timing:
    """The fake kubelet's delays, in milliseconds (short: tests wait on them)."""

    start_ms: int = 200
    ready_delay_ms: int = 1000
    resize_delay_ms: int = 500
    crashloop_backoff_ms: int = 500
    crashloop_backoff_max_ms: int = 8000
    delete_ms: int = 200


@dataclass
class StageSet:
    """Every fake node's stages; ``documents()`` is what the config file holds."""

    nodes: dict[str, FakeNode] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)

    def documents(self) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = [_node_stage()]
        for node in sorted(self.nodes.values(), key=lambda n: n.name):
            docs.extend(pod_stages(node, self.timing))
        return docs


def write_config(path: Path, stages: StageSet) -> Path:
    """The ``--config`` file: one KWOK Stage per document, each as JSON.

    JSON is YAML, so KWOK's multi-document loader reads it; and nothing in the
    templates is re-typed by a YAML writer on the way.
    """
    path.write_text("".join("---\n" + json.dumps(d, indent=1) + "\n" for d in stages.documents()))
    return path


# --------------------------------------------------------------------- jq

# Definitions every selector starts with. `.` is the pod as JSON.
_JQ_PRELUDE = r"""
def sidecars: [(.spec.initContainers // [])[] | select(.restartPolicy == "Always")];
def runnable: sidecars + (.spec.containers // []);
def statuses: (.status.initContainerStatuses // []) + (.status.containerStatuses // []);
def status_of($name): [statuses[] | select(.name == $name)] | first;
def qty: tostring
  | capture("^(?<n>[0-9.]+)(?<s>[a-zA-Z]*)$")
  | (.n | tonumber) * {"": 1, "m": 0.001, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
      "P": 1e15, "E": 1e18, "Ki": 1024, "Mi": 1048576, "Gi": 1073741824,
      "Ti": 1099511627776, "Pi": 1125899906842624, "Ei": 1152921504606846976}[.s];
def ctr_req($r): (.resources.requests[$r] // "0") | qty;
def pod_req($r):
  (if (.spec.resources.requests[$r] // null) != null then .spec.resources.requests[$r] | qty
   else
     (reduce (.spec.initContainers // [])[] as $c ({side: 0, init: 0};
        if $c.restartPolicy == "Always" then .side += ($c | ctr_req($r))
        else .init = ([.init, .side + ($c | ctr_req($r))] | max) end)) as $i
     | ([(.spec.containers // [])[] | ctr_req($r)] | add // 0) as $main
     | [$main + $i.side, $i.init] | max
   end) + ((.spec.overhead[$r] // "0") | qty);
def live: (.metadata.deletionTimestamp == null) and (.status.podIP != null)
  and (.status.phase == "Running");
def image_changed($sidecars_too):
  . as $p
  | any((if $sidecars_too then runnable else (.spec.containers // []) end)[];
        . as $c | ($p | status_of($c.name)) as $s | $s != null and $s.image != $c.image);
def norm: {requests: (.requests // {}), limits: (.limits // {})};
def resize_wanted($reports; $podlevel):
  $reports and (
    (. as $p | any(((.spec.initContainers // []) + (.spec.containers // []))[];
      . as $c | ($p | status_of($c.name)) as $s
      | $s != null and (($s.resources // {}) | norm) != (($c.resources // {}) | norm)))
    or ($podlevel and .spec.resources != null
        and ((.status.resources // {}) | norm) != (.spec.resources | norm)));
def condition($t): [(.status.conditions // [])[] | select(.type == $t)] | first;
def condition_for_generation($t):
  condition($t) as $c | $c != null and $c.observedGeneration == .metadata.generation;
def cpu_resize_wanted:
  . as $p | any(runnable[];
    . as $c | ($p | status_of($c.name)) as $s
    | $s != null and ($c.resources.requests.cpu // null) != ($s.allocatedResources.cpu // null));
def cpu_manager_blocks($static):
  $static and .status.qosClass == "Guaranteed" and cpu_resize_wanted;
def not_ready_running: any(statuses[]; .state.running != null and .ready != true);
def crashlooping: any(statuses[]; .state.waiting.reason == "CrashLoopBackOff");
"""


def _jq(expr: str, **args: Any) -> dict[str, Any]:
    """A selector term: the prelude, ``$name`` bindings for ``args``, then ``expr``."""
    binds = "".join(f"{json.dumps(v)} as ${k} | " for k, v in args.items())
    return {"jq": {"key": f"{_JQ_PRELUDE}\n{binds}{expr}", "operator": "In", "values": ["true"]}}


# -------------------------------------------------------------- templates

# Go templates (text/template with sprig, as KWOK renders them; `.` is the pod as
# JSON). Each status entry and condition is built as a dict and written with
# toJson, so values copied from the pod stay exactly as they were.

_HEAD = """\
{{- $now := Now }}
{{- $pod := . }}
{{- $conds := list }}
"""


def _image_id(img: str) -> str:
    """A fake but stable digest reference for image ``img``: a new image, a new imageID."""
    return (
        f'(printf "%s@sha256:%s" (regexReplaceAll "(:[^/:@]*)?(@.*)?$" {img} "") '
        f"(sha256sum {img}))"
    )


def _container_id(restarts: str) -> str:
    return (
        '(printf "containerd://%s" (sha256sum (printf "%s/%s/%v/%s" '
        f"$pod.metadata.uid $c.name {restarts} $c.image)))"
    )


def _with_resources(reports: bool) -> str:
    """Give entry ``$e`` the ``resources`` and ``allocatedResources`` of spec container ``$c``."""
    if not reports:
        return ""
    return (
        '{{- $_ := set $e "resources" (dict "requests" ($c.resources.requests | default (dict))'
        ' "limits" ($c.resources.limits | default (dict))) }}\n'
        '{{- $_ := set $e "allocatedResources" ($c.resources.requests | default (dict)) }}\n'
    )


def _running(reports: bool, *, ready: str, restarts: str, last_state: str = "") -> str:
    """``$e`` := container ``$c`` just started on its spec image."""
    last = f' "lastState" {last_state}' if last_state else ""
    return (
        '{{- $e = dict "name" $c.name "image" $c.image'
        f' "imageID" {_image_id("$c.image")} "containerID" {_container_id(restarts)}'
        f' "restartCount" {restarts} "started" true "ready" {ready}'
        f' "state" (dict "running" (dict "startedAt" $now)){last} }}}}\n'
        f"{_with_resources(reports)}"
    )


def _crashed(reports: bool, *, restarts: str) -> str:
    """``$e`` := container ``$c`` crashed (again) and waits in CrashLoopBackOff."""
    return (
        '{{- $msg := printf "back-off restarting failed container=%s pod=%s_%s(%s)"'
        " $c.name $pod.metadata.name $pod.metadata.namespace $pod.metadata.uid }}\n"
        '{{- $e = dict "name" $c.name "image" $c.image'
        f' "imageID" {_image_id("$c.image")} "containerID" {_container_id(restarts)}'
        f' "restartCount" {restarts} "started" false "ready" false'
        ' "state" (dict "waiting" (dict "reason" "CrashLoopBackOff" "message" $msg))'
        ' "lastState" (dict "terminated" (dict "exitCode" 1 "reason" "Error"'
        f' "startedAt" $now "finishedAt" $now "containerID" {_container_id(restarts)})) }}}}\n'
        f"{_with_resources(reports)}"
    )


def _completed_init(reports: bool) -> str:
    """``$e`` := regular init container ``$c`` ran to completion."""
    return (
        '{{- $e = dict "name" $c.name "image" $c.image'
        f' "imageID" {_image_id("$c.image")} "containerID" {_container_id("0")}'
        ' "restartCount" 0 "started" false "ready" true'
        ' "state" (dict "terminated" (dict "exitCode" 0 "reason" "Completed"'
        f' "startedAt" $now "finishedAt" $now "containerID" {_container_id("0")})) }}}}\n'
        f"{_with_resources(reports)}"
    )


def _statuses(*, init: str, sidecar: str, container: str) -> str:
    """Rebuild both status lists; each body sets ``$e`` from ``$c`` (spec) and ``$old``.

    ``$e`` starts as a copy of the container's current status (``$old``), so a
    body that does nothing keeps the entry as it is. Afterwards ``$unready``
    names the runnable containers that are not ready, for the pod conditions.
    """
    def loop(source: str, status: str, var: str, body: str) -> str:
        return (
            f"{{{{- range $c := ($pod.spec.{source} | default (list)) }}}}\n"
            "{{- $old := dict }}"
            f"{{{{- range ($pod.status.{status} | default (list)) }}}}"
            "{{ if eq .name $c.name }}{{ $old = . }}{{ end }}{{ end }}\n"
            "{{- $side := eq ($c.restartPolicy | default \"\") \"Always\" }}\n"
            "{{- $e := deepCopy $old }}\n"
            f"{body}"
            f"{{{{- ${var} = append ${var} $e }}}}\n"
            f"{{{{- if and (or $side {'true' if source == 'containers' else 'false'}) (not $e.ready) }}}}"
            "{{ $unready = append $unready $c.name }}{{ end }}\n"
            "{{- end }}\n"
        )

    init_body = (
        "{{- if $side }}\n" + sidecar + "{{- else }}\n" + init + "{{- end }}\n"
    )
    out = "{{- $ics := list }}{{- $cs := list }}{{- $unready := list }}\n"
    out += loop("initContainers", "initContainerStatuses", "ics", init_body)
    out += loop("containers", "containerStatuses", "cs", container)
    out += "{{- if $pod.spec.initContainers }}\ninitContainerStatuses: {{ toJson $ics }}\n{{- end }}\n"
    out += "containerStatuses: {{ toJson $cs }}\n"
    return out


def _condition(ctype: str, status: str, reason: str = '""', message: str = '""', extra: str = "") -> str:
    """Append condition ``ctype`` to ``$conds``; keep its lastTransitionTime if the status holds."""
    return (
        "{{- $oc := dict }}"
        "{{- range ($pod.status.conditions | default (list)) }}"
        f'{{{{ if eq .type "{ctype}" }}}}{{{{ $oc = . }}}}{{{{ end }}}}{{{{ end }}}}\n'
        f"{{{{- $st := {status} }}}}\n"
        "{{- $ltt := $now }}{{ if eq ($oc.status | default \"\") $st }}{{ $ltt = $oc.lastTransitionTime }}{{ end }}\n"
        f'{{{{- $conds = append $conds (dict "type" "{ctype}" "status" $st "reason" {reason}'
        f' "message" {message} "lastTransitionTime" $ltt{extra}) }}}}\n'
    )


def _delete_condition(ctype: str) -> str:
    return f'{{{{- $conds = append $conds (dict "type" "{ctype}" "$patch" "delete") }}}}\n'


_READINESS = (
    _condition("PodReadyToStartContainers", '"True"')
    + _condition("Initialized", '"True"')
    + "{{- $ready := ternary \"False\" \"True\" (gt (len $unready) 0) }}\n"
    + "{{- $why := ternary \"ContainersNotReady\" \"\" (gt (len $unready) 0) }}\n"
    + "{{- $what := ternary (printf \"containers with unready status: [%s]\" (join \" \" $unready)) \"\" (gt (len $unready) 0) }}\n"
    + _condition("ContainersReady", "$ready", "$why", "$what")
    + _condition("Ready", "$ready", "$why", "$what")
)

_CONDITIONS_OUT = "conditions: {{ toJson $conds }}\nobservedGeneration: {{ $pod.metadata.generation }}\n"


def _pod_level_resources(field: str) -> str:
    """``status.resources`` (or ``allocatedResources``: the requests) from the pod-level ``spec.resources``."""
    value = (
        '(dict "requests" (dig "spec" "resources" "requests" (dict) $pod)'
        ' "limits" (dig "spec" "resources" "limits" (dict) $pod))'
        if field == "resources"
        else '(dig "spec" "resources" "requests" (dict) $pod)'
    )
    return (
        '{{- if (dig "spec" "resources" "" $pod) }}\n'
        f"{field}: {{{{ toJson {value} }}}}\n"
        "{{- end }}\n"
    )


def _restarts_plus_one() -> str:
    return "{{- $restarts := add1 ($old.restartCount | default 0) }}\n"


def _stage(name: str, node: FakeNode, selector: list[dict[str, Any]], template: str | None, *,
           delay: dict[str, Any] | None = None, delete: bool = False) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    if template is not None:
        steps.append(
            {
                "patch": {
                    "subresource": "status",
                    "root": "status",
                    "type": "strategic",
                    "template": _HEAD + template,
                }
            }
        )
    if delete:
        steps.append({"delete": True})
    spec: dict[str, Any] = {
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": {"matchExpressions": selector},
        "steps": steps,
    }
    if delay:
        spec["delay"] = delay
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": f"{name}.{node.name}"},
        "spec": spec,
    }


def pod_stages(node: FakeNode, timing: Timing) -> list[dict[str, Any]]:
    """The stages that play the pods on ``node`` (see the module docstring)."""
    rep = node.kubelet.reports_resources
    side = node.kubelet.restarts_sidecar_on_image_change
    args = {"node": node.name, "reports": rep, "sidecars": side,
            "cpu": node.cpu_millis / 1000, "memory": node.memory_bytes,
            "static": node.cpu_manager_policy == "static",
            "podlevel": node.kubelet.resizes_pod_level_resources}
    on = "(.spec.nodeName == $node)"
    live = f"{on} and live"
    quiet_image = "(image_changed($sidecars) | not)"
    fits = '(pod_req("cpu") <= $cpu and pod_req("memory") <= $memory)'
    admissible = "(cpu_manager_blocks($static) | not)"
    busy_resize = '(resize_wanted($reports; $podlevel) and (condition_for_generation("PodResizePending") | not))'
    settled = f"{live} and {quiet_image} and ({busy_resize} | not)"

    # A bad image crash-loops from its first start; anything else runs and is ready.
    first_start = (
        '{{- if contains "%s" $c.image }}\n' % BAD_IMAGE_MARKER
        + _crashed(rep, restarts="1")
        + "{{- else }}\n"
        + _running(rep, ready="true", restarts="0")
        + "{{- end }}\n"
    )
    start = _statuses(init=_completed_init(rep), sidecar=first_start, container=first_start)
    start_tpl = (
        start
        + (_pod_level_resources("resources") + _pod_level_resources("allocatedResources")
           if node.kubelet.resizes_pod_level_resources else "")
        + _READINESS
        + _CONDITIONS_OUT
        + "{{- $ip := PodIPWith $pod.spec.nodeName ($pod.spec.hostNetwork | default false)"
        " $pod.metadata.uid $pod.metadata.name $pod.metadata.namespace }}\n"
        "{{- $hostIP := NodeIPWith $pod.spec.nodeName }}\n"
        "phase: Running\n"
        "startTime: {{ $now | Quote }}\n"
        "hostIP: {{ $hostIP | Quote }}\n"
        "hostIPs: [{ip: {{ $hostIP | Quote }}}]\n"
        "podIP: {{ $ip | Quote }}\n"
        "podIPs: [{ip: {{ $ip | Quote }}}]\n"
    )

    # A changed image restarts that container alone. The terminated state it
    # leaves is a clean stop (the kubelet asked it to go).
    stopped = (
        '(dict "terminated" (dict "exitCode" 0 "reason" "Completed"'
        ' "startedAt" (dig "state" "running" "startedAt" $now $old) "finishedAt" $now'
        ' "containerID" ($old.containerID | default "")))'
    )
    restart_on_change = (
        "{{- if and $old.image (ne $old.image $c.image) }}\n"
        + _restarts_plus_one()
        + '{{- if contains "%s" $c.image }}\n' % BAD_IMAGE_MARKER
        + _crashed(rep, restarts="$restarts")
        + "{{- else }}\n"
        + _running(rep, ready="false", restarts="$restarts", last_state=stopped)
        + "{{- end }}\n{{- end }}\n"
    )
    image_tpl = (
        _statuses(
            init="",
            sidecar=restart_on_change if side else "",
            container=restart_on_change,
        )
        + _READINESS
        + _CONDITIONS_OUT
    )

    make_ready = (
        '{{- if and (dig "state" "running" false $old) (not $old.ready) }}\n'
        '{{- $_ := set $e "ready" true }}{{- $_ := set $e "started" true }}\n'
        "{{- end }}\n"
    )
    ready_tpl = _statuses(init="", sidecar=make_ready, container=make_ready) + _READINESS + _CONDITIONS_OUT

    crash_again = (
        '{{- if eq (dig "state" "waiting" "reason" "" $old) "CrashLoopBackOff" }}\n'
        + _restarts_plus_one()
        + _crashed(rep, restarts="$restarts")
        + "{{- end }}\n"
    )
    crash_tpl = _statuses(init="", sidecar=crash_again, container=crash_again) + _READINESS + _CONDITIONS_OUT

    allocate = (
        '{{- if $old.state }}{{- $_ := set $e "allocatedResources" ($c.resources.requests | default (dict)) }}{{- end }}\n'
    )
    actuate = (
        '{{- if $old.state }}{{- $_ := set $e "resources" (dict "requests" ($c.resources.requests | default (dict))'
        ' "limits" ($c.resources.limits | default (dict))) }}{{- end }}\n'
    )
    generation = ' "observedGeneration" $pod.metadata.generation'
    pod_level = node.kubelet.resizes_pod_level_resources
    pod_allocate = _pod_level_resources("allocatedResources") if pod_level else ""
    pod_actuate = _pod_level_resources("resources") if pod_level else ""
    resize_start_tpl = (
        _statuses(init=allocate, sidecar=allocate, container=allocate)
        + pod_allocate
        + _condition("PodResizeInProgress", '"True"', extra=generation)
        + _delete_condition("PodResizePending")
        + _CONDITIONS_OUT
    )
    resize_actuate_tpl = (
        _statuses(init=actuate, sidecar=actuate, container=actuate)
        + pod_actuate
        + _delete_condition("PodResizeInProgress")
        + _CONDITIONS_OUT
    )
    # The kubelet's words for an infeasible resize (its allocation manager), less
    # the requested amount, which a template cannot add up; cpu is named first.
    def infeasible_tpl(resource: str, capacity: int) -> str:
        return infeasible_because(f"Node didn't have enough capacity: {resource}, capacity: {capacity}")

    def infeasible_because(why: str) -> str:
        message = json.dumps(why)
        return (
            _condition("PodResizePending", '"True"', '"Infeasible"', message, extra=generation)
            + _CONDITIONS_OUT
        )

    clear_tpl = _delete_condition("PodResizePending") + _delete_condition("PodResizeInProgress") + _CONDITIONS_OUT
    crash_delay_jq = (
        _JQ_PRELUDE
        + f"[statuses[] | select(.state.waiting.reason == \"CrashLoopBackOff\") | .restartCount] | (min // 1) as $n"
        f" | [{timing.crashloop_backoff_ms} * pow(2; ([$n - 1, 16] | min)), {timing.crashloop_backoff_max_ms}] | min"
        ' | "\\(floor)ms"'
    )

    crash_delay = {"durationMilliseconds": timing.crashloop_backoff_ms,
                   "durationFrom": {"jq": {"expression": crash_delay_jq}}}
    plays = [
        _Play("pod-start",
              f"{on} and .metadata.deletionTimestamp == null and .status.podIP == null",
              start_tpl, delay_ms=timing.start_ms),
        _Play("container-image-change", f"{live} and image_changed($sidecars)", image_tpl),
        _Play("resize-infeasible-cpu-manager",
              f"{live} and {quiet_image} and resize_wanted($reports; $podlevel)"
              " and cpu_manager_blocks($static)"
              ' and (condition_for_generation("PodResizePending") | not)',
              infeasible_because(
                  'Resize is infeasible for Guaranteed Pods alongside CPU Manager policy "static"')),
        _Play("resize-start",
              f"{live} and {quiet_image} and resize_wanted($reports; $podlevel) and {fits} and {admissible}"
              ' and (condition_for_generation("PodResizeInProgress") | not)',
              resize_start_tpl),
        _Play("resize-infeasible-cpu",
              f"{live} and {quiet_image} and resize_wanted($reports; $podlevel) and {admissible}"
              ' and pod_req("cpu") > $cpu'
              ' and (condition_for_generation("PodResizePending") | not)',
              infeasible_tpl("cpu", node.cpu_millis)),
        _Play("resize-infeasible-memory",
              f"{live} and {quiet_image} and resize_wanted($reports; $podlevel) and {admissible}"
              ' and pod_req("cpu") <= $cpu and pod_req("memory") > $memory'
              ' and (condition_for_generation("PodResizePending") | not)',
              infeasible_tpl("memory", node.memory_bytes)),
        _Play("resize-actuate",
              f"{live} and {quiet_image} and resize_wanted($reports; $podlevel)"
              ' and condition_for_generation("PodResizeInProgress")',
              resize_actuate_tpl, delay_ms=timing.resize_delay_ms),
        _Play("resize-clear",
              f"{live} and {quiet_image} and (resize_wanted($reports; $podlevel) | not)"
              ' and (condition("PodResizePending") != null or condition("PodResizeInProgress") != null)',
              clear_tpl),
        _Play("containers-ready", f"{settled} and not_ready_running",
              ready_tpl, delay_ms=timing.ready_delay_ms),
        _Play("crashloop", f"{settled} and (not_ready_running | not) and crashlooping",
              crash_tpl, delay=crash_delay),
        _Play("pod-delete",
              f"{on} and .metadata.deletionTimestamp != null"
              " and ((.metadata.finalizers // []) | length == 0)",
              None, delay_ms=timing.delete_ms, delete=True),
    ]
    # Any other live pod: a patch that changes nothing. Why: KWOK hands out pod
    # IPs from a pool per node CIDR that it fills only from the pods it plays,
    # and a restart (a fake node added) empties it; playing every settled pod
    # once refills it, so a new pod never gets an address already in use. The
    # selector is the exact complement of the others', so it never races them.
    others = " or ".join(f"({p.expr})" for p in plays)
    plays.append(_Play("pod-settled", f"{live} and (({others}) | not)",
                       "podIP: {{ $pod.status.podIP | Quote }}\n"))
    return [
        _stage(p.name, node, [_jq(p.expr, **args)], p.template,
               delay=p.delay or ({"durationMilliseconds": p.delay_ms} if p.delay_ms else None),
               delete=p.delete)
        for p in plays
    ]


@dataclass(frozen=True)
class _Play:
    """One stage of a node: when (a jq expression over the pod) and what (a status template)."""

    name: str
    expr: str
    template: str | None
    delay_ms: int = 0
    delay: dict[str, Any] | None = None
    delete: bool = False


def _node_stage() -> dict[str, Any]:
    """A fake node that is not Ready (created by hand with the label) becomes Ready.

    Nodes made by ``LocalCluster.create_fake_node`` are written Ready with their
    nodeInfo at once; this only covers others.
    """
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "node-ready"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Node"},
            "selector": {
                "matchExpressions": [
                    {"jq": {"key": '[(.status.conditions // [])[] | select(.type == "Ready") | .status] | first // "Unknown"',
                            "operator": "NotIn", "values": ["True"]}}
                ]
            },
            "steps": [
                {
                    "patch": {
                        "subresource": "status",
                        "root": "status",
                        "type": "strategic",
                        "template": (
                            "{{- $now := Now }}\n"
                            "conditions:\n"
                            "- type: Ready\n"
                            "  status: \"True\"\n"
                            "  reason: KubeletReady\n"
                            "  message: kwok is playing this node's kubelet\n"
                            "  lastHeartbeatTime: {{ $now | Quote }}\n"
                            "  lastTransitionTime: {{ $now | Quote }}\n"
                            "phase: Running\n"
                        ),
                    }
                }
            ],
        },
    }
