"""The kube-scheduler extender: bounds sidecar overcommit exposure per node (docs/scheduling.md).

Pure core, importable without a server or a cluster:

* :mod:`extender.accounting`: per-node sums in nano-unit ints, updated pod by pod;
* :mod:`extender.scoring`: filter verdicts with their messages, and headroom scores;
* :mod:`extender.cache`: the cluster as the extender knows it, assumed bindings included;
* :mod:`extender.protocol`: ``k8s.io/kube-scheduler/extender/v1`` bytes in and out;
* :mod:`extender.simulate`, :mod:`extender.snapshot`: what-ifs on a static cluster state.

Edges, named as the webhook's are: :mod:`extender.process` (the process, run by
:mod:`serving.process`), :mod:`extender.handlers` (HTTP), :mod:`extender.metrics`
(``/metrics``, in the format of :mod:`serving.exposition`),
:mod:`extender.policy_source` (the live policy); and :mod:`extender.service`
(the verbs), :mod:`extender.feed` (list+watch), :mod:`extender.binder`
(Bindings), :mod:`extender.inflight` (waiting for binds), :mod:`extender.collector`.

A pod has one shape here, :class:`policy.pod_entry.PodEntry`, from the watch to the scorer.
"""
