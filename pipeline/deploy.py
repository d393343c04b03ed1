"""Orchestration: fetch what a plan needs (manifests, history), plan, package.

Adapters are passed in; nothing here creates AWS clients or database connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from pipeline.bundle import write_bundle
from pipeline.errors import BlockedError, ConfigError
from pipeline.manifest import Manifest
from pipeline.plan import ImageRef, Plan, make_plan, plan_files
from pipeline.refs import ManifestSource

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PlannedRollback:
    plan: Plan
    deployed: Manifest
    target: Manifest

    def bundle(self) -> bytes:
        return write_bundle(self.plan.to_dict(), plan_files(self.plan, self.deployed, self.target))


def deployed_manifest(
    source: ManifestSource, ecs: Any, cluster: str, service: str, container: str | None = None
) -> tuple[Manifest, ImageRef]:
    """The manifest of the image an ECS service runs now (by digest)."""
    state = ecs.service_state(cluster, service)
    candidates = [
        c
        for c in state.containers
        if c.repository and (container is None or c.container == container)
    ]
    if not candidates:
        raise ConfigError(
            f"ECS service {cluster}/{service} runs no ECR image"
            + (f" in container {container}" if container else ""),
            hint="name the app container with --container",
        )
    errors = []
    for c in candidates:
        digest = c.digest
        if digest is None:
            resolved = source.registry.resolve(c.image)
            digest = resolved.digest
            log.warning(
                "the task definition names a tag; resolved it through ECR",
                container=c.container,
                image=c.image,
                digest=digest,
            )
        try:
            return source.load_digest(c.repository, digest, c.tag)
        except ConfigError as e:
            errors.append(str(e))
    raise ConfigError(
        f"no container of {cluster}/{service} has a published manifest: " + "; ".join(errors)
    )


def plan_rollback(
    source: ManifestSource,
    *,
    to_ref: str,
    from_ref: str | None = None,
    from_service: tuple[Any, str, str, str | None] | None = None,
    history: Any = None,
    strategy: str = "auto",
    force_code_only: bool = False,
) -> PlannedRollback:
    """Fetch both manifests (and take the history given), then plan. Pure after fetching."""
    if from_ref:
        deployed, deployed_ref = source.load(from_ref)
    elif from_service:
        ecs, cluster, service, container = from_service
        deployed, deployed_ref = deployed_manifest(source, ecs, cluster, service, container)
    else:
        raise ConfigError("say what is deployed: --from REF or --from-service CLUSTER/SERVICE")
    target, target_ref = source.load(to_ref)
    plan = make_plan(
        deployed,
        target,
        history,
        strategy=strategy,
        force_code_only=force_code_only,
        source=deployed_ref,
        target_ref=target_ref,
    )
    return PlannedRollback(plan, deployed, target)


def require_unblocked(plan: Plan) -> None:
    if plan.blocked:
        raise BlockedError(
            "the plan is blocked: " + "; ".join(f"[{b.code}] {b.message}" for b in plan.blockers),
            hint=plan.blockers[0].hint,
        )
