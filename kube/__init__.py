"""A small Kubernetes API client on aiohttp, and list+watch on top of it.

Objects stay the apiserver's JSON as plain dicts (decoded by orjson); the
official ``kubernetes`` package is used only to read kubeconfig and
in-cluster credentials (``kube.config``). ``kube.client`` moves requests,
``kube.watch`` keeps a collection in sync for the webhook and the extender.
"""
