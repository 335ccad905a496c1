"""What the servers share at their edges, below :mod:`webhook` and :mod:`extender`.

* :mod:`serving.process` — the lifecycle every server runs: listen, background tasks,
  signals, readiness flip, drain with a deadline, cleanup, the start error;
* :mod:`serving.exposition` — the Prometheus text format both ``/metrics`` speak;
* :mod:`serving.policy_source` — the global policy, live from a file or a ConfigMap;
* :mod:`serving.polling` — following a mounted file (the policy, the serving certificate).

It may import :mod:`policy` and :mod:`kube`, never a server package.
"""
