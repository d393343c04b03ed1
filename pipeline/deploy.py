"""Orchestration: fetch what a plan needs (manifests, history), plan, package.

Adapters are passed in; nothing here creates AWS clients or database connections.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import structlog

from pipeline.bundle import write_bundle
from pipeline.errors import BlockedError, ConfigError
from pipeline.manifest import Manifest
from pipeline.plan import (
    SCHEMA_IMAGE_TAG,
    SCHEMA_IMAGES_LABEL,
    ImageRef,
    Plan,
    make_plan,
    plan_files,
)
from pipeline.refs import ManifestSource

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PlannedRollback:
    plan: Plan
    deployed: Manifest
    target: Manifest
    carried: tuple[tuple[Manifest, ImageRef], ...] = ()
    also: tuple[str, ...] = ()  # more services a move of this plan takes along (--also-service)

    @cached_property
    def plan_dict(self) -> dict[str, Any]:
        """plan.to_dict(), built once for the bundle, the risk lint and --json."""
        return self.plan.to_dict()

    @cached_property
    def files(self) -> dict[str, bytes]:
        """The scripts the plan runs, by bundle path."""
        return plan_files(self.plan, self.deployed, self.target, self.carried)

    def bundle(self) -> bytes:
        return write_bundle(self.plan_dict, self.files)


def service_manifests(
    source: ManifestSource, state: Any, container: str | None = None
) -> tuple[Manifest, ImageRef, tuple[tuple[Manifest, ImageRef], ...]]:
    """The manifest of the image an ECS service runs now (by digest; `state` is its
    Ecs.service_state), and those of the images whose migrations its record (label and
    tags, see _carried) says are applied beyond it (make_plan's `carried`)."""
    cluster, service = state.cluster, state.service
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
            deployed, ref = source.load_digest(c.repository, digest, c.tag)
        except ConfigError as e:
            errors.append(str(e))
            continue
        return deployed, ref, _carried(source, state, c, ref)
    raise ConfigError(
        f"no container of {cluster}/{service} has a published manifest: " + "; ".join(errors)
    )


def _carried(
    source: ManifestSource, state: Any, c: Any, ref: ImageRef
) -> tuple[tuple[Manifest, ImageRef], ...]:
    """The manifests of the images whose migrations may be applied beyond the container's:
    those its io.dbroll.schema-images label names (dbroll's moves write it), then those the
    service's io.dbroll.schema-image/<digest> tags name for that container (every move
    writes them too; they outlive a revision registered without the label, CodeDeploy
    blue/green from taskdef.json, and the hook adds what it applied). make_plan counts a
    version of theirs only where the deployed image lacks it (and, with history, where the
    database has it)."""
    arn = state.raw.get("serviceArn")
    sources: dict[str, tuple[str, str]] = {}  # digest -> (where it is named, how to drop it)
    for d in c.labels.get(SCHEMA_IMAGES_LABEL, "").split(","):
        sources.setdefault(
            d.strip(),
            (
                f"task definition {state.task_definition}, container {c.container}: its "
                f"label {SCHEMA_IMAGES_LABEL}",
                "register a revision of the task definition without the label",
            ),
        )
    for key, value in sorted(state.tags.items()):
        if key.startswith(SCHEMA_IMAGE_TAG) and c.container in value.split():
            sources.setdefault(
                key[len(SCHEMA_IMAGE_TAG) :],
                (
                    f"ECS service {state.cluster}/{state.service}: its tag {key}",
                    f"remove the tag: `aws ecs untag-resource --resource-arn {arn} --tag-keys "
                    f"{key}`",
                ),
            )
    out = []
    for digest, (where, drop) in sources.items():
        if not digest or digest == ref.digest:
            continue
        try:
            out.append(source.load_digest(c.repository, digest))
        except ConfigError as e:
            raise ConfigError(
                f"{where} says migrations of {c.repository}@{digest} stayed applied (a "
                f"code-only rollback kept them, or a deployment rolled back after they "
                f"ran), and that image's manifest cannot be read: {e.message}",
                hint="the plan needs that manifest for their undo scripts: publish it again "
                f"(`dbroll manifest publish`), or, if those migrations were undone some other "
                f"way, {drop}",
            ) from None
    return tuple(out)


def plan_rollback(
    source: ManifestSource,
    *,
    to_ref: str,
    from_ref: str | None = None,
    from_service: tuple[Any, str, str, str | None] | None = None,
    history: Any = None,
    strategy: str = "auto",
    force_code_only: bool = False,
    allow_generated_undo: bool = False,
    also: tuple[str, ...] = (),
) -> PlannedRollback:
    """Fetch both manifests (and take the history given), then plan. Pure after fetching.
    `also` (with from_service): services that move with it, checked as the move checks them
    (see _services_along), so that the plan names them."""
    if also and not from_service:
        raise ConfigError("--also-service needs --from-service CLUSTER/SERVICE")
    carried: tuple[tuple[Manifest, ImageRef], ...] = ()
    state = None
    if from_ref:
        deployed, deployed_ref = source.load(from_ref)
    elif from_service:
        ecs, cluster, service, container = from_service
        state = ecs.service_state(cluster, service)
        deployed, deployed_ref, carried = service_manifests(source, state, container)
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
        allow_generated_undo=allow_generated_undo,
        carried=carried,
    )
    names: tuple[str, ...] = ()
    if also and state is not None:
        names = tuple(
            st.service for st, _ in _services_along(ecs, state, also, deployed_ref, target_ref)
        )
    return PlannedRollback(plan, deployed, target, carried, names)


def require_unblocked(plan: Plan) -> None:
    if plan.blocked:
        raise BlockedError(
            "the plan is blocked: " + "; ".join(f"[{b.code}] {b.message}" for b in plan.blockers),
            hint=plan.blockers[0].hint,
        )


@dataclass
class RollbackResult:
    plan: Plan
    bundle_uri: str | None = None
    task_arn: str | None = None
    task_exit: int | None = None
    task_definition: str | None = None
    deployment: str | None = None
    outcome: str = ""
    durations: dict[str, float] = field(default_factory=dict)
    audit_uri: str | None = None
    would: list[str] = field(default_factory=list)  # dry run: the writes it would make
    task_result: dict[str, Any] = field(default_factory=dict)  # what the task reported
    also: dict[str, str] = field(default_factory=dict)  # --also-service moved: task definition

    def to_dict(self) -> dict[str, Any]:
        return {
            **({"also_services": self.also} if self.also else {}),
            **({"would": self.would} if self.would else {}),
            **{k: v for k, v in self.task_result.items() if k != "message"},
            "plan": self.plan.to_dict(),
            "bundle_uri": self.bundle_uri,
            "task_arn": self.task_arn,
            "task_exit": self.task_exit,
            "task_definition": self.task_definition,
            "deployment": self.deployment,
            "outcome": self.outcome,
            "durations": self.durations,
        }


TASK_RESULT_MARK = "dbroll-task-result"  # the line apply-bundle writes for us (see cli)


def task_result(lines: Any) -> dict[str, Any]:
    """The result line a database task wrote last (data at risk, backup), or {}."""
    import json

    for line in reversed(list(lines)):
        text = line.strip()
        if text.startswith(TASK_RESULT_MARK + " "):
            try:
                doc = json.loads(text[len(TASK_RESULT_MARK) + 1 :])
            except ValueError:
                return {}
            return doc if isinstance(doc, dict) else {}
    return {}


def _image_for(current: str, repository: str, digest: str) -> str:
    """The target image reference in the registry the task definition already uses."""
    base = current.split("@", 1)[0]
    host = base.rsplit("/", 1)[0] + "/" if "/" in base and "." in base.split("/", 1)[0] else ""
    return f"{host}{repository}@{digest}"


def rollback(
    *,
    source: ManifestSource,
    ecs: Any,
    ecs_client: Any,
    executor: Any,
    cluster: str,
    service: str,
    to_ref: str | None = None,
    bundle: tuple[str, Any] | None = None,
    apply_args: list[str] | None = None,
    container: str | None = None,
    strategy: str = "auto",
    force_code_only: bool = False,
    allow_generated_undo: bool = False,
    history: Any = None,
    confirm: Any = None,
    dry_run: bool = False,
    run_id: str | None = None,
    timeout: float = 600,
    delay: float = 15,
    sts: Any = None,
    also: tuple[str, ...] = (),
    bluegreen: Any = None,
) -> RollbackResult:
    """Roll an ECS service back: plan, database step in a one-off task, then the service.

    `bundle` = (s3 URI, Bundle) runs an approved bundle instead of planning again: the
    service must still run the bundle's source image (else BlockedError, nothing changed).
    Nothing touches the service unless the database step succeeded. `also`: more services
    of the cluster on the same image, moved with it (see _services_along).
    """
    import time

    from pipeline.errors import DbrollError

    t0 = time.monotonic()
    state = ecs.service_state(cluster, service)
    deployed, deployed_ref, carried = service_manifests(source, state, container)
    if bundle is not None:
        bundle_uri, approved = bundle
        plan = Plan.from_dict(approved.plan)
        target, target_ref = None, plan.target
        if plan.source.digest != deployed_ref.digest:
            raise BlockedError(
                f"bundle {bundle_uri} was planned from {plan.source.label}, but "
                f"{cluster}/{service} runs {deployed_ref.label}: the bundle is stale; "
                "nothing was changed",
                hint="plan again from what the service runs now (the rollback pipeline's "
                "Plan stage, or `dbroll plan --from-service ...`)",
            )
        if not target_ref.repository or not target_ref.digest:
            raise ConfigError(f"bundle {bundle_uri}: its plan names no target image digest")
    else:
        if not to_ref:
            raise ConfigError("say where to go: --to REF or --bundle s3://...")
        target, target_ref = source.load(to_ref)
        plan = make_plan(
            deployed,
            target,
            history,
            strategy=strategy,
            force_code_only=force_code_only,
            source=deployed_ref,
            target_ref=target_ref,
            allow_generated_undo=allow_generated_undo,
            carried=carried,
        )
    result = RollbackResult(plan, durations={"plan_s": round(time.monotonic() - t0, 3)})
    require_unblocked(plan)
    along = _services_along(ecs, state, also, deployed_ref, target_ref)
    if deployed_ref.digest == target_ref.digest and plan.strategy != "undo":
        result.outcome = f"{cluster}/{service} already runs {target_ref.label}: nothing to do" + (
            f" ({plan.summary})" if plan.strategy == "code-only" else ""
        )
        return result
    images = _target_images(state, deployed_ref, target_ref)
    _check_controllers(bluegreen, plan, [(state, images), *along])
    forward = _forward_command(source, deployed_ref)
    if dry_run:
        uri = (
            bundle[0]
            if bundle
            else source.store.bundle_uri_for(
                PlannedRollback(plan, deployed, target, carried).bundle()
            )
        )
        result.would = (
            ([] if bundle else [f"s3:PutObject {uri} (the rollback bundle)"])
            + executor.describe(["dbroll", "apply-bundle", uri, *(apply_args or [])])
            + [c for st, imgs in along for c in _service_calls(st, imgs, plan, bluegreen)]
            + _service_calls(state, images, plan, bluegreen)
            + [f"s3:PutObject {source.store.uri(source.store.audit_key(run_id))} (audit record)"]
        )
        result.outcome = f"dry run: nothing was changed; {plan.summary}"
        return result
    if confirm is not None and not confirm(plan):
        raise DbrollError("rollback cancelled; nothing was changed")

    def database_step() -> None:
        if bundle is not None:
            result.bundle_uri = bundle[0]
        else:
            result.bundle_uri = source.store.put_bundle(
                PlannedRollback(plan, deployed, target, carried).bundle()
            )
        _database_then_service(
            result,
            [
                "dbroll",
                "apply-bundle",
                result.bundle_uri,
                "--bucket",
                source.store.bucket,
                "--prefix",
                source.store.prefix,
                *(apply_args or []),
            ],
            executor,
            ecs_client,
            state,
            images,
            run_id,
            deployed_ref.digest,
            timeout,
            delay,
            after_failure=(
                f"the database is in {target_ref.label}'s state (the undo ran) while the "
                f"service still runs {deployed_ref.label}; to put the schema forward again "
                f"run, as a one-off task or with --executor local: `{' '.join(forward)}`"
            ),
            along=along,
            bluegreen=bluegreen,
        )

    return _audited(
        result, "rolled back", database_step, source, cluster, service, target_ref, run_id, sts, t0
    )


def _target_images(state: Any, deployed_ref: ImageRef, target_ref: ImageRef) -> dict[str, str]:
    return {
        c.container: _image_for(c.image, target_ref.repository, target_ref.digest)
        for c in state.containers
        if c.repository == deployed_ref.repository
    }


def _services_along(
    ecs: Any, primary: Any, names: tuple[str, ...], deployed_ref: ImageRef, target_ref: ImageRef
) -> list[tuple[Any, dict[str, str]]]:
    """The other services of the cluster (--also-service) that move with the primary: each
    must run the primary's image (its containers of that repository, by digest), so the one
    database step is right for it too. One that already runs the target (an earlier run of
    this move stopped after moving it) is skipped. Anything else is an error, before any
    change. Returns (state, container -> target image) for each one to move."""
    out = []
    for name in dict.fromkeys(names):
        if name == primary.service:
            continue
        st = ecs.service_state(primary.cluster, name)
        mine = {c.digest for c in st.containers if c.repository == deployed_ref.repository}
        if mine == {target_ref.digest}:
            log.info("already runs the target", service=name, image=target_ref.label)
            continue
        if mine != {deployed_ref.digest}:
            runs = ", ".join(f"{c.container}={c.image}" for c in st.containers) or "nothing"
            raise ConfigError(
                f"ECS service {primary.cluster}/{name} (--also-service) runs {runs}, not "
                f"{deployed_ref.label} as {primary.cluster}/{primary.service} does; nothing "
                "was changed",
                hint=f"the database step is planned from {primary.service}'s image: move "
                f"{name} on its own (--service {name}), or bring it to the same image first",
            )
        out.append((st, _target_images(st, deployed_ref, target_ref)))
    return out


def _forward_command(source: ManifestSource, ref: ImageRef) -> list[str]:
    """The command that applies an image's migrations (its manifest from the bucket)."""
    return [
        "dbroll",
        "migrate",
        "--manifest",
        f"{ref.repository}@{ref.digest}",
        "--bucket",
        source.store.bucket,
        "--prefix",
        source.store.prefix,
    ]


def _schema_label(plan: Plan) -> dict[str, str | None]:
    """The moved containers' io.dbroll.schema-images label after `plan` (None: removed): the
    digests, in the service's repository, of the images whose migrations stay applied beyond
    the one it will run. Every move writes it; the next plan reads it (service_manifests)."""
    return {SCHEMA_IMAGES_LABEL: ",".join(plan.schema_images) or None}


def _unchanged(state: Any, images: dict[str, str], labels: dict[str, str | None]) -> bool:
    """Whether the revision a move would register is the current one: the same images, the
    same labels (None: absent)."""
    current = {c.container: c for c in state.containers}
    return all(
        name in current
        and current[name].image == image
        and all(current[name].labels.get(k) == v for k, v in labels.items())
        for name, image in images.items()
    )


def _check_controllers(bluegreen: Any, plan: Plan, moves: list[tuple[Any, dict[str, str]]]) -> None:
    """Each service that will get a new revision can be moved, before anything changes:
    ECS's own rolling deployments, or CodeDeploy blue/green (its deployment group found, a
    load balancer container to name, none of its deployments under way); an EXTERNAL
    controller is refused. One whose revision stays (only its record changes) is not
    checked."""
    from pipeline.aws.bluegreen import CODE_DEPLOY

    for st, images in moves:
        if _unchanged(st, images, _schema_label(plan)):
            continue
        if st.controller == CODE_DEPLOY:
            if bluegreen is None:
                raise ConfigError(
                    f"ECS service {st.cluster}/{st.service} is deployed by CodeDeploy "
                    "(blue/green), and this caller cannot create CodeDeploy deployments; "
                    "nothing was changed",
                    hint="pass bluegreen=pipeline.aws.bluegreen.BlueGreen(...), as the CLI does",
                )
            bluegreen.check(st)
        elif st.controller != "ECS":
            raise ConfigError(
                f"ECS service {st.cluster}/{st.service} has the {st.controller} deployment "
                "controller: its task sets are managed outside ECS and CodeDeploy, so dbroll "
                "cannot move it; nothing was changed",
                hint="run the database step alone (`dbroll plan`, then `dbroll apply-bundle` "
                "where the database is reachable) and move the task sets your usual way",
            )


def _service_calls(
    state: Any, images: dict[str, str], plan: Plan, bluegreen: Any = None
) -> list[str]:
    add, remove = _schema_tags(state, plan, images)
    arn = state.raw.get("serviceArn", f"{state.cluster}/{state.service}")
    tags = []
    if remove:
        tags.append(f"ecs:UntagResource resourceArn={arn} tagKeys={','.join(remove)}")
    if add:
        tags.append(
            f"ecs:TagResource resourceArn={arn} tags="
            + ",".join(f"{k}={v}" for k, v in add.items())
        )
    labels = _schema_label(plan)
    if _unchanged(state, images, labels):
        return tags  # the service stays on its revision
    family = state.task_definition.rsplit("/", 1)[-1].rsplit(":", 1)[0]
    value = labels[SCHEMA_IMAGES_LABEL]
    had = any(c.labels.get(SCHEMA_IMAGES_LABEL) for c in state.containers if c.container in images)
    label = (
        f"; label {SCHEMA_IMAGES_LABEL}={value} (migrations of those images stay applied)"
        if value
        else f"; label {SCHEMA_IMAGES_LABEL} removed"
        if had
        else ""
    )
    return [
        f"ecs:DescribeTaskDefinition taskDefinition={state.task_definition}",
        f"ecs:RegisterTaskDefinition family={family} (a copy of the current revision with "
        + ", ".join(f"{k}={v}" for k, v in sorted(images.items()))
        + label
        + ")",
        *(
            bluegreen.calls(state)
            if state.controller == "CODE_DEPLOY"  # pipeline.aws.bluegreen.CODE_DEPLOY
            else [
                f"ecs:UpdateService cluster={state.cluster} service={state.service} "
                "taskDefinition=<the new revision>",
                f"ecs:DescribeServices cluster={state.cluster} services={state.service} "
                "until the deployment completes",
            ]
        ),
        *tags,
    ]


def _schema_tags(
    state: Any, plan: Plan, containers: Iterable[str], added: dict[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """The service's io.dbroll.schema-image/<digest> tags after `plan`, as (to set, to
    remove): the label's record, kept on the service too, where a task definition registered
    without dbroll (CodeDeploy blue/green from taskdef.json) does not erase it. `added`:
    tags written since `state` was read."""
    value = " ".join(sorted(containers))
    want = {SCHEMA_IMAGE_TAG + d: value for d in plan.schema_images}
    have = {
        k: v for k, v in {**state.tags, **(added or {})}.items() if k.startswith(SCHEMA_IMAGE_TAG)
    }
    return {k: v for k, v in want.items() if have.get(k) != v}, sorted(set(have) - set(want))


def _retag(
    ecs: Any,
    state: Any,
    plan: Plan,
    containers: Iterable[str],
    added: dict[str, str] | None = None,
) -> None:
    """Write the schema tags after a move (or instead of one, when the revision stays). The
    move stands if that fails: the revision's label holds the same record, so only a later
    revision registered without dbroll needs the tags; say how to write them by hand."""
    from pipeline.aws.ecs import retag_service

    add, remove = _schema_tags(state, plan, containers, added)
    if not (add or remove):
        return
    failed = retag_service(ecs, state, add, remove)
    if failed:
        arn = state.raw.get("serviceArn", "")
        by_hand = []
        if remove:
            by_hand.append(
                f"aws ecs untag-resource --resource-arn {arn} --tag-keys {' '.join(remove)}"
            )
        if add:
            tags = " ".join(f"'key={k},value={v}'" for k, v in add.items())
            by_hand.append(f"aws ecs tag-resource --resource-arn {arn} --tags {tags}")
        log.warning(
            "the service's schema tags could not be written (the move itself stands); its "
            f"task definition's label {SCHEMA_IMAGES_LABEL} has the same record, which a "
            "revision registered without dbroll (CodeDeploy blue/green) would lose",
            service=f"{state.cluster}/{state.service}",
            error=failed,
            hint="allow ecs:TagResource and ecs:UntagResource on the service (infra/ does), "
            "then: " + " && ".join(by_hand),
        )


def deploy(
    *,
    source: ManifestSource,
    ecs: Any,
    ecs_client: Any,
    executor: Any,
    cluster: str,
    service: str,
    image_ref: str,
    container: str | None = None,
    dry_run: bool = False,
    run_id: str | None = None,
    timeout: float = 600,
    delay: float = 15,
    sts: Any = None,
    resume_interrupted: bool = False,
    out_of_order: bool = False,
    also: tuple[str, ...] = (),
    bluegreen: Any = None,
) -> RollbackResult:
    """The forward path: the target image's pending migrations run in a one-off task of the
    deployed task definition (`dbroll migrate --manifest`), then the service moves.

    `resume_interrupted` gives the task DBROLL_RESUME_INTERRUPTED=1: it first finishes a
    migration a stopped runner left half done (`migrate --resume-interrupted`). An
    environment variable, not the flag: an image whose dbroll predates it ignores it
    instead of failing on an unknown option. `out_of_order` likewise gives it
    DBROLL_OUT_OF_ORDER=1 (`migrate --out-of-order`), and lets the plan apply versions older
    than the newest applied one."""
    import time

    from pipeline.errors import DbrollError

    t0 = time.monotonic()
    state = ecs.service_state(cluster, service)
    deployed, deployed_ref, carried = service_manifests(source, state, container)
    target, target_ref = source.load(image_ref)
    plan = make_plan(
        deployed,
        target,
        None,
        source=deployed_ref,
        target_ref=target_ref,
        carried=carried,
        out_of_order=out_of_order,
    )
    result = RollbackResult(plan, durations={"plan_s": round(time.monotonic() - t0, 3)})
    if plan.direction == "rollback":
        raise DbrollError(
            f"{target_ref.label} is older than what {cluster}/{service} runs",
            hint=f"use `dbroll rollback --cluster {cluster} --service {service} --to "
            f"{image_ref}`, which undoes what the older image cannot know",
        )
    require_unblocked(plan)
    along = _services_along(ecs, state, also, deployed_ref, target_ref)
    if deployed_ref.digest == target_ref.digest:
        result.outcome = f"{cluster}/{service} already runs {target_ref.label}: nothing to do"
        return result
    images = _target_images(state, deployed_ref, target_ref)
    _check_controllers(bluegreen, plan, [(state, images), *along])
    command = _forward_command(source, target_ref)
    extra_env = {
        **({"DBROLL_RESUME_INTERRUPTED": "1"} if resume_interrupted else {}),
        **({"DBROLL_OUT_OF_ORDER": "1"} if out_of_order else {}),
    }
    if dry_run:
        result.would = (
            executor.describe(command, extra_env)
            + [
                f"ecs:TagResource resourceArn={st.raw.get('serviceArn')} tags="
                f"{SCHEMA_IMAGE_TAG}{target_ref.digest}={' '.join(sorted(imgs))} (the "
                "database has the target's migrations from here on, whether or not the "
                "service gets to it)"
                for st, imgs in [*along, (state, images)]
                if target_ref.digest not in {c.digest for c in st.containers if c.container in imgs}
            ]
            + [c for st, imgs in along for c in _service_calls(st, imgs, plan, bluegreen)]
            + _service_calls(state, images, plan, bluegreen)
            + [f"s3:PutObject {source.store.uri(source.store.audit_key(run_id))} (audit record)"]
        )
        result.outcome = f"dry run: nothing was changed; {plan.summary}"
        return result

    def database_step() -> None:
        _database_then_service(
            result,
            command,
            executor,
            ecs_client,
            state,
            images,
            run_id,
            target_ref.digest,
            timeout,
            delay,
            after_failure=(
                f"the database has {target_ref.label}'s migrations while the service still "
                f"runs {deployed_ref.label} (fine while they are additive: `dbroll compat` "
                "tells); fix the service and deploy again, or undo them with `dbroll "
                f"rollback --cluster {cluster} --service {service} --to "
                f"{deployed_ref.repository}@{deployed_ref.digest}`"
            ),
            extra_env=extra_env,
            along=along,
            bluegreen=bluegreen,
            applied_image=target_ref.digest,
            blocked_hint=(
                ""
                if resume_interrupted
                else "if the task's lines say a stopped runner left a migration running (half "
                "done), run the same command with --resume-interrupted: the task finishes it "
                "first, as `dbroll resume` would. "
            )
            + "Anything else there (a migration that failed on an error, changed files, "
            "versions no file has) needs a decision where you reach the database: `dbroll "
            "status`, then `dbroll resume` or `dbroll repair` (with --executor local from "
            "inside the VPC, or a shell there)",
        )

    return _audited(
        result, "deployed", database_step, source, cluster, service, target_ref, run_id, sts, t0
    )


def _audited(result, verb, step, source, cluster, service, target_ref, run_id, sts, t0):
    """Run the move; whatever happens, write the audit record."""
    import time

    from pipeline.errors import DbrollError

    try:
        step()
        result.outcome = f"{cluster}/{service} runs {target_ref.label} ({result.plan.strategy})"
    except DbrollError as e:
        result.outcome = f"failed: {e.message.splitlines()[0]}"
        raise
    finally:
        result.durations["total_s"] = round(time.monotonic() - t0, 3)
        record = {
            **result.to_dict(),
            "cluster": cluster,
            "service": service,
            "run_id": run_id,
            "caller": _caller(sts),
        }
        result.audit_uri = source.store.put_audit(record, run_id)
    log.info(
        verb,
        cluster=cluster,
        service=service,
        strategy=result.plan.strategy,
        task_definition=result.task_definition,
        audit=result.audit_uri,
    )
    return result


def _caller(sts: Any) -> str | None:
    if sts is None:
        return None
    try:
        return sts.get_caller_identity().get("Arn")
    except Exception:  # noqa: BLE001 - the audit record must not fail the move
        return None


def _database_then_service(
    result,
    command,
    executor,
    ecs_client,
    state,
    images,
    run_id,
    image_digest,
    timeout,
    delay,
    after_failure: str = "",
    extra_env: dict[str, str] | None = None,
    blocked_hint: str = "",
    along: list[tuple[Any, dict[str, str]]] | None = None,
    bluegreen: Any = None,
    applied_image: str | None = None,
) -> None:
    """The database step through the executor, then (only if it succeeded) the services:
    those `along` first, the primary last, so that a run stopped half-way is planned again
    from the primary's unchanged image and moves the rest. `applied_image` (a deploy: the
    target's digest) is recorded on each service between the two, so that a move that
    fails leaves the services saying whose migrations the database now has."""
    import time

    from pipeline.aws.ecs import ServiceDeploymentFailed, point_service_at, record_applied
    from pipeline.errors import AwsError, BusyError, DbrollError

    t1 = time.monotonic()
    env = {
        "DBROLL_RUN_ID": run_id or "",
        "DBROLL_IMAGE": image_digest or "",
        "DBROLL_TASK": "1",
        **(extra_env or {}),
    }
    outcome = executor.run(command, env)
    result.task_arn, result.task_exit = outcome.task_arn, outcome.exit_code
    result.task_result = task_result(outcome.log_lines)
    result.durations["database_s"] = round(time.monotonic() - t1, 3)
    if not outcome.ok:
        tail = "\n".join(outcome.log_lines[-15:])
        message = (
            f"the database step failed (task {outcome.task_arn}, exit {outcome.exit_code}, "
            f"{outcome.stopped_reason}); the service was not touched\n{tail}"
        )
        # the task's own exit code says what kind of failure it was
        cls = {3: BlockedError, 4: BusyError}.get(outcome.exit_code or -1, DbrollError)
        hint = (
            "`dbroll status` shows where the database stands; fix the cause and run the same "
            "command again: it continues where it stopped"
        )
        if cls is BlockedError and blocked_hint:
            hint = blocked_hint  # "again" would block again: say what decides it
        raise cls(message, hint=hint)
    t2 = time.monotonic()
    along = along or []
    recorded = {
        st.service: record_applied(ecs_client, st, imgs, applied_image)
        for st, imgs in [*along, (state, images)]
    }

    def move(service_state: Any, service_images: dict[str, str]) -> tuple[str, str]:
        added = recorded.get(service_state.service, {})
        if _unchanged(service_state, service_images, _schema_label(result.plan)):
            # the schema came back to the image it runs: no new revision, only the record
            _retag(ecs_client, service_state, result.plan, service_images, added)
            return service_state.task_definition, ""
        moved = point_service_at(
            ecs_client,
            service_state,
            service_images,
            labels=_schema_label(result.plan),
            timeout=timeout,
            delay=delay,
            bluegreen=bluegreen,
        )
        _retag(ecs_client, service_state, result.plan, service_images, added)
        return moved

    for i, (other, other_images) in enumerate(along):
        try:
            result.also[other.service], _ = move(other, other_images)
        except AwsError as e:
            result.durations["service_s"] = round(time.monotonic() - t2, 3)
            moved = ", ".join(result.also) or "none yet"
            left = ", ".join(st.service for st, _ in along[i:])
            raise DbrollError(
                f"{e.message}\nThe database step succeeded first: {after_failure}. Services "
                f"moved to the target: {moved}; not moved: {left}, then {state.service}",
                hint="look at that service's stopped tasks and events; once the cause is "
                "fixed, running the same command again finds the database step done and "
                "moves the services not moved yet",
            ) from None
    try:
        result.task_definition, result.deployment = move(state, images)
    except AwsError as e:  # ServiceDeploymentFailed, or a call that failed (AccessDenied)
        if isinstance(e, ServiceDeploymentFailed):
            result.task_definition = e.task_definition
        result.durations["service_s"] = round(time.monotonic() - t2, 3)
        raise DbrollError(
            f"{e.message}\nThe database step succeeded first: {after_failure}",
            hint="the cause is above: the service's stopped tasks and events, the CodeDeploy "
            "deployment's events, or the permission an AWS error names; once it is fixed, "
            "running the same command again skips the database step",
        ) from None
    result.durations["service_s"] = round(time.monotonic() - t2, 3)
