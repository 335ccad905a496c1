"""One admission decision: a parsed review in, the answer's bytes and what to count out.

This is the whole of the webhook's judgement, kept free of HTTP and of the
cluster so it is tested with plain dicts: the server hands it the policy and
namespace knowledge it holds *now* and writes the bytes back. The engine
(:func:`policy.inject.inject`) is the same one ``meshfit inject`` runs, and
the patch is the list of edits it made (``result.patch``), never a diff of
whole pods, which for a pod with thousands of env vars costs more than
everything else on the request path together.

A pod the engine cannot handle is the pod's problem, not the cluster's: the
policy's ``injection.failClosed`` decides whether it is denied or admitted
unchanged with a warning. Either way it is counted and logged by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from policy.inject import InjectionError, InjectionResult, Namespace, inject
from policy.model import Policy
from webhook.answer_cache import AnswerCache, Verdict
from webhook.review import Review, allow, deny, encode_patch

NamespaceResolver = Callable[[str], Namespace]

# Results, as counted by ``meshfit_webhook_requests_total{result=...}``.
INJECTED = "injected"
SKIPPED = "skipped"
#: Not a pod CREATE: passed through untouched.
PASSED = "passed"
#: The engine failed and the policy fails open: admitted unchanged, with a warning.
ADMITTED_ON_ERROR = "admitted_on_error"
#: The engine failed and the policy fails closed.
DENIED = "denied"
#: No policy loaded yet: nothing to inject with (the replica is not ready either).
NO_POLICY = "no_policy"


@dataclass(slots=True)
class Outcome:
    """The answer to send and the facts the server counts and logs."""

    result: str
    body: bytes
    #: ``(sidecar, version, mode)`` per injected sidecar, for ``injections_total``.
    sidecars: tuple[tuple[str, str, str], ...] = ()
    #: Short, bounded label for ``skips_total{reason=...}``.
    skip_label: str = ""
    skip_reason: str = ""
    #: The engine's failure, for the log line (``namespace/name: error``).
    error: str = ""
    #: The failure was a bug (not an ``InjectionError``): log with its traceback.
    unexpected: BaseException | None = None
    warnings: tuple[str, ...] = ()
    #: Answered from the cache of recent verdicts.
    cached: bool = False


def pod_name(review: Review) -> str:
    """``namespace/name`` for logs; pods made by controllers have only ``generateName`` at CREATE."""
    obj = review.object or {}
    meta = obj.get("metadata") or {}
    name = review.name or meta.get("name") or ""
    if not name and meta.get("generateName"):
        name = f"{meta['generateName']}*"
    return f"{review.namespace or meta.get('namespace') or '?'}/{name or '?'}"


def verdict_of(result: InjectionResult, policy: Policy, namespace: Namespace) -> Verdict:
    """Keep what answering needs from one engine run (the patch already in wire form)."""
    if result.injected:
        return Verdict(
            injected=True,
            patch=encode_patch(result.patch) if result.patch else None,
            warnings=tuple(result.warnings),
            skip_label="",
            skip_reason="",
            sidecars=tuple(injected_sidecars(result, policy)),
            namespace_policy=namespace.policy,
            valid_until=result.valid_until,
        )
    return Verdict(
        injected=False,
        patch=None,
        warnings=tuple(result.warnings),
        skip_label=skip_label(result),
        skip_reason=result.skip_reason or "",
        sidecars=(),
        namespace_policy=namespace.policy,
    )


def admit(
    review: Review, policy: Policy | None, resolve: NamespaceResolver, cache: AnswerCache | None = None
) -> Outcome:
    """Answer one review with the policy and namespace knowledge in force now."""
    if not review.is_pod_create:
        return Outcome(PASSED, allow(review))
    if policy is None:
        warning = "meshfit did not inject this pod: the webhook has no policy loaded yet"
        return Outcome(NO_POLICY, allow(review, warnings=(warning,)), warnings=(warning,))
    pod = review.object
    assert pod is not None  # parse_review guarantees an object for a Pod CREATE
    namespace_name = review.namespace or str((pod.get("metadata") or {}).get("namespace") or "default")
    namespace = resolve(namespace_name)
    key = cache.key(pod, namespace_name, namespace.labels, namespace.policy) if cache is not None else None
    verdict = cache.get(key, policy, namespace.policy) if cache is not None and key is not None else None
    cached = verdict is not None
    if verdict is None:
        unexpected: BaseException | None = None
        try:
            result = inject(pod, namespace, policy)
        except InjectionError as exc:
            error = str(exc) or type(exc).__name__
        except Exception as exc:  # a bug in the engine must not become a 500 for every pod
            error = f"internal error: {type(exc).__name__}: {exc}"
            unexpected = exc
        else:
            verdict = verdict_of(result, policy, namespace)
            if cache is not None and key is not None:
                cache.put(key, policy, verdict)
        if verdict is None:
            return _failure(review, policy, error, unexpected)
    if verdict.injected:
        body = allow(review, warnings=verdict.warnings, encoded_patch=verdict.patch)
        return Outcome(INJECTED, body, verdict.sidecars, warnings=verdict.warnings, cached=cached)
    return Outcome(
        SKIPPED,
        allow(review, warnings=verdict.warnings),
        skip_label=verdict.skip_label,
        skip_reason=verdict.skip_reason,
        warnings=verdict.warnings,
        cached=cached,
    )


def _failure(review: Review, policy: Policy, error: str, unexpected: BaseException | None) -> Outcome:
    """The engine could not handle the pod: deny or admit unchanged, as ``injection.failClosed`` says."""
    if policy.injection.fail_closed:
        message = f"meshfit cannot inject this pod and the policy fails closed: {error}"
        return Outcome(DENIED, deny(review, message), error=error, unexpected=unexpected)
    warning = f"meshfit did not inject this pod: {error}"
    return Outcome(
        ADMITTED_ON_ERROR, allow(review, warnings=(warning,)), error=error, unexpected=unexpected, warnings=(warning,)
    )


def skip_label(result: InjectionResult) -> str:
    """A short, bounded reason for metrics: the engine's own skip code."""
    return result.skip_code or "other"


def injected_sidecars(result: InjectionResult, policy: Policy) -> list[tuple[str, str, str]]:
    """``(sidecar, version, mode)`` per injected sidecar, for ``injections_total``."""
    mode = result.record.mode if result.record is not None else policy.resources.mode
    return [(name, choice.version, mode) for name, choice in result.versions.items()]
