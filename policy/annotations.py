"""The annotation and label keys that make up meshfit's contract on a pod.

The webhook writes them, the extender and ``meshfit leak`` read them, and
people grep for them; one module keeps the three in agreement.
"""

from __future__ import annotations

PREFIX = "meshfit.io/"

#: Sidecars injected, their versions and the policy revision (idempotency, inspection).
STATUS = PREFIX + "status"
#: Compact JSON accounting record (see :mod:`policy.record`).
ACCOUNTING = PREFIX + "accounting"
#: Pod pin of a sidecar version: ``1.8.1`` or ``rpc-mesh=1.8.1,msg-mesh=2.3.0``.
VERSION_PIN = PREFIX + "version"
#: Pod resize of one sidecar within the policy's bounds: ``meshfit.io/size-rpc-mesh: cpu=500m,memory=256Mi``.
SIZE_PREFIX = PREFIX + "size-"
#: Namespace label/value that opts a namespace in (policy may rename it).
DEFAULT_INJECT_KEY = PREFIX + "inject"
#: What a higher layer asks a running pod's sidecars to become (:mod:`policy.targets`).
TARGET = PREFIX + "target"
#: The fleet controller's last operation on the pod (:mod:`policy.targets`).
OPERATION = PREFIX + "operation"
#: Downward-API annotation prefix: ``meshfit.io/slot-<container>`` holds the version that slot runs.
SLOT_VERSION_PREFIX = PREFIX + "slot-"
#: On a workload's pod template: the version pin a recreate asked for (a second recreate for it is not made).
RECREATED_FOR = PREFIX + "recreated-for"
