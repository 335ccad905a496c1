"""Leader election as part of a process's lifecycle (:mod:`serving.process`).

:func:`elect` makes a :class:`kube.leader.LeaderElector` one of the
process's background tasks, so it follows the order every meshfit process
keeps: the candidate campaigns once the process is warm (its caches filled:
a leader with a cold cache would judge a fleet it has not seen), leads while
the process serves, and gives the Lease up only after the drain, once the
requests in flight have been answered, so that no two replicas ever act at
once and a standby takes over at its next retry rather than after a whole
lease duration.

What leading means is the process's business: the extender answers the
scheduler's verbs and is Ready only while it leads (a standby keeps its
watches running); a process without an HTTP port (a fleet controller) waits
in :meth:`~kube.leader.LeaderElector.wait_leading` before it acts and asks
for ``exit_on_loss``, as client-go's users do, so that it never acts on
state from a leadership it no longer has.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from kube.client import ApiClient
from kube.leader import LeaderElectionConfig, LeaderElector
from serving.process import Process, StartError

#: How often a candidate checks whether the process is warm enough to campaign.
WARM_POLL = 0.1


class ElectionOptions(Protocol):
    """The ``leader_elect_*`` fields every server's ServeOptions has (cli.server_options.leader_election)."""

    @property
    def leader_elect_lease(self) -> tuple[str, str] | None: ...
    @property
    def leader_elect_identity(self) -> str: ...
    @property
    def leader_elect_lease_duration(self) -> float: ...
    @property
    def leader_elect_renew_deadline(self) -> float: ...
    @property
    def leader_elect_retry_period(self) -> float: ...


def elector_for(client: ApiClient, options: ElectionOptions) -> LeaderElector:
    """The candidate the options describe; :class:`StartError` when its durations do not fit together."""
    assert options.leader_elect_lease is not None
    namespace, name = options.leader_elect_lease
    try:
        config = LeaderElectionConfig(
            namespace, name, options.leader_elect_identity,
            lease_duration=options.leader_elect_lease_duration,
            renew_deadline=options.leader_elect_renew_deadline,
            retry_period=options.leader_elect_retry_period,
        )
    except ValueError as exc:
        raise StartError(f"leader election: {exc}") from None
    return LeaderElector(client, config)


def elect(
    process: Process,
    elector: LeaderElector,
    *,
    warm: Callable[[], bool] | None = None,
    exit_on_loss: bool = False,
) -> None:
    """Run ``elector`` while ``process`` runs: campaign once ``warm()``, release after the drain.

    ``exit_on_loss``: losing the lease stops the process with exit code 1
    (the kubelet restarts it, and it campaigns again from scratch).
    """
    if exit_on_loss:
        previous = elector.on_stopped_leading

        def stop_process() -> None:
            if previous is not None:
                previous()
            process.stop(1)

        elector.on_stopped_leading = stop_process

    async def campaign(stopped: asyncio.Event) -> None:
        while warm is not None and not warm():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopped.wait(), WARM_POLL)
            if stopped.is_set():
                return
        await elector.run(stopped)

    process.background("leader election", campaign)
