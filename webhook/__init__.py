"""The mutating admission webhook: kube-apiserver's door into the injection engine.

Layers import one way, from the edge inward:

* :mod:`webhook.process` — the process: what it is made of (TLS listener, reloads, watches),
  run by :mod:`serving.process`;
* :mod:`webhook.handlers` — HTTP: envelope checks, counting, answering;
* :mod:`webhook.mutate` — one admission decision from a parsed review (pure);
* :mod:`webhook.review` — AdmissionReview v1/v1beta1 in and out (pure);
* :mod:`webhook.answer_cache` — engine verdicts remembered for identical pods;
* :mod:`webhook.namespaces` — namespace labels, which the request path reads with the
  policies of :mod:`serving.namespace_policies`;
* :mod:`webhook.metrics` — what ``/metrics`` shows (format: :mod:`serving.exposition`).

See docs/webhook.md.
"""
