"""The namespace label cache and the webhook's metrics."""

from __future__ import annotations

from serving.exposition import parse_text
from webhook.metrics import WebhookMetrics
from webhook.namespaces import NamespaceCache, NoCluster
from serving.namespace_policies import LivePolicy


def ns(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def test_cache_follows_list_and_events() -> None:
    cache = NamespaceCache()
    assert not cache.synced
    cache.on_sync([ns("shop", **{"meshfit.io/inject": "enabled"}), ns("bank")], "10")
    assert cache.synced and cache.size == 2
    assert cache.labels("shop") == {"meshfit.io/inject": "enabled"}
    cache.on_event("MODIFIED", ns("bank", **{"meshfit.io/inject": "enabled"}))
    assert cache.labels("bank") == {"meshfit.io/inject": "enabled"}
    cache.on_event("DELETED", ns("shop"))
    assert cache.misses == 0
    assert cache.labels("shop") == {}, "unknown counts as not opted in"
    assert cache.misses == 1
    cache.on_sync([ns("new")], "11")
    assert cache.size == 1 and cache.labels("bank") == {}


def test_cache_tolerates_odd_objects() -> None:
    cache = NamespaceCache()
    cache.on_sync([{"metadata": {"name": "x", "labels": {"a": 1, "b": "c"}}}, {"metadata": {}}, {}], "1")
    assert cache.labels("x") == {"b": "c"}
    assert cache.size == 1


def test_no_cluster_knows_nothing() -> None:
    assert NoCluster().labels("anything") is None
    assert NoCluster().synced


def test_webhook_metrics_read_live_state() -> None:
    metrics = WebhookMetrics()
    live = LivePolicy()
    metrics.observe_policy(live)
    samples = parse_text(metrics.render().decode())
    assert samples['meshfit_webhook_policy_reloads_total{result="success"}'] == 0
    assert not any(key.startswith("meshfit_webhook_policy_info") for key in samples)
    live.refuse("ConfigMap a/b", "not found")
    samples = parse_text(metrics.render().decode())
    assert samples["meshfit_webhook_policy_last_update_invalid"] == 1
    assert samples['meshfit_webhook_policy_reloads_total{result="invalid"}'] == 1
