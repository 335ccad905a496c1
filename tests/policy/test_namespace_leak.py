"""``meshfit leak``'s figures summed by hand: per namespace, and the total over namespaces."""

from __future__ import annotations

from policy.namespace_leak import NamespaceLeak, leak_by_namespace
from policy.pod_accounting import PodAccounting, zero_resources
from policy.quantity import Quantity


def Q(text: str) -> Quantity:
    return Quantity.parse(text)


def acc(cpu: str, memory: str, leak_cpu: str = "0", leak_memory: str = "0", mesh: str | None = "meshfit",
        namespace: str = "shop") -> PodAccounting:
    return PodAccounting("u", namespace, "p", "n1", "Running", {"cpu": Q(cpu), "memory": Q(memory)},
                         zero_resources(), {"cpu": Q(leak_cpu), "memory": Q(leak_memory)}, mesh)  # type: ignore[arg-type]


def test_a_namespace_sums_requests_and_leak_and_counts_leaking_pods_by_mesh() -> None:
    ns = NamespaceLeak("shop")
    ns.add(acc("1", "1Gi", "100m", "64Mi"))
    ns.add(acc("500m", "512Mi", "50m", "64Mi"))
    ns.add(acc("250m", "256Mi", mesh=None))  # no leak: counted, not leaking
    ns.add(acc("250m", "256Mi", "10m", "0", mesh=None))
    assert ns.pods == 4
    assert ns.requests == {"cpu": Q("2"), "memory": Q("2Gi")}
    assert ns.leak == {"cpu": Q("160m"), "memory": Q("128Mi")}
    # A leak whose injector is not known is shown as such, not dropped.
    assert ns.leaking == {"meshfit": 2, "unknown": 1}


def test_the_total_adds_namespaces_mesh_by_mesh() -> None:
    a, b = NamespaceLeak("a"), NamespaceLeak("b")
    a.add(acc("1", "1Gi", "100m", "64Mi"))
    a.add(acc("1", "1Gi", "100m", "64Mi", mesh="istio"))
    b.add(acc("2", "1Gi", "200m", "0"))
    total = NamespaceLeak("TOTAL")
    total.merge(a)
    total.merge(b)
    assert (total.pods, total.leaking) == (3, {"meshfit": 2, "istio": 1})
    assert total.requests == {"cpu": Q("4"), "memory": Q("3Gi")}
    assert total.leak == {"cpu": Q("400m"), "memory": Q("128Mi")}


def test_no_pods_is_an_empty_table_and_a_zero_total_row() -> None:
    rows, total = leak_by_namespace([])
    assert rows == []
    assert (total.namespace, total.pods, total.leaking) == ("TOTAL", 0, {})
