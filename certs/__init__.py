"""The webhook's TLS material: generate it, inspect it, and reload it while serving.

``certs.generate`` and ``certs.inspect`` are offline (the CLI, ``make certs``);
``certs.reload`` is the only part a running server touches.
"""
