"""The rollback (or forward) plan: pure, from values.

``make_plan(deployed, target, history, strategy)`` compares the manifest of the deployed
image with the target image's (and, when given, the database's own history) and returns a
frozen :class:`Plan`: the strategy, ordered steps, blockers with what to do, and the
history the database must show for the plan to still be valid. Executing it is someone
else's job (``dbroll apply-bundle``).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from pipeline.db.history import History
from pipeline.manifest import Manifest, ManifestMigration
from pipeline.migrations.lint import ADDITIVE, BREAKING, DATA, SEVERITY, UNKNOWN
from pipeline.migrations.model import Version
from pipeline.perf import gc_paused
from pipeline.render import render_table

_vkey = attrgetter("parts")  # sort key for Versions: tuple comparison in C
_mkey = attrgetter("version.parts")  # the same for migrations
# the label on the service's container that names the images whose migrations stay applied
# beyond the image it runs (pipeline.deploy writes and reads it; Plan.schema_images is its value)
SCHEMA_IMAGES_LABEL = "io.dbroll.schema-images"
# the same record as tags of the ECS service, one per image (key: this + digest, value: the
# container), which outlive a task definition registered without the label (CodeDeploy)
SCHEMA_IMAGE_TAG = "io.dbroll.schema-image/"


def make_plan(
    deployed: Manifest, target: Manifest, history: History | None = None, **kw: Any
) -> Plan:
    """Plan the move from the deployed image to the target image (see _make_plan)."""
    with gc_paused():
        return _make_plan(deployed, target, history, **kw)


def render_text(plan: Plan) -> str:
    """The plan for a terminal."""
    with gc_paused():
        return _render_text(plan)


PLAN_SCHEMA = "dbroll.plan/v1"
SUMMARY_VERSIONS = 20  # versions the one-line summary names; the rest are counted
STRATEGIES = ("auto", "undo", "code-only")


@dataclass(frozen=True)
class ImageRef:
    """An image as the plan knows it: by digest, never only by tag."""

    repository: str | None = None
    digest: str | None = None
    tag: str | None = None
    manifest_sha256: str | None = None
    app_version: str | None = None

    @property
    def label(self) -> str:
        name = self.repository or "local"
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest[:19]}"
        elif self.manifest_sha256:
            name += f" (manifest {self.manifest_sha256[:12]})"
        return name

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "tag": self.tag,
            "manifest_sha256": self.manifest_sha256,
            "app_version": self.app_version,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImageRef:
        return cls(
            **{
                k: d.get(k)
                for k in ("repository", "digest", "tag", "manifest_sha256", "app_version")
            }
        )


@dataclass(frozen=True)
class PlanStep:
    action: str  # undo | migrate | repeatable
    version: str | None
    description: str
    klass: str
    path: str  # the file inside the bundle
    source: str  # the file in the migration folder (as history records it)
    sha256: str
    transaction: bool = True
    generated: bool = False  # an undo dbroll generated (--allow-generated-undo)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "version": self.version,
            "description": self.description,
            "class": self.klass,
            "path": self.path,
            "source": self.source,
            "sha256": self.sha256,
            "transaction": self.transaction,
            **({"generated": True} if self.generated else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PlanStep:
        return cls(
            d["action"],
            d.get("version"),
            d.get("description", ""),
            d.get("class", ""),
            d["path"],
            d["source"],
            d["sha256"],
            bool(d.get("transaction", True)),
            bool(d.get("generated", False)),
        )


@dataclass(frozen=True)
class Blocker:
    code: str
    message: str
    hint: str
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Blocker:
        return cls(d["code"], d["message"], d.get("hint", ""), d.get("version"))


@dataclass(frozen=True)
class Reverted:
    """A version the rollback takes away from the code's view, with its class and reason."""

    version: str
    description: str
    klass: str
    findings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "description": self.description,
            "class": self.klass,
            "findings": list(self.findings),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Reverted:
        return cls(
            d["version"], d.get("description", ""), d.get("class", ""), tuple(d.get("findings", ()))
        )


@dataclass(frozen=True)
class Plan:
    direction: str  # rollback | forward | none
    strategy: str  # code-only | undo | migrate | none
    requested: str  # the strategy asked for
    source: ImageRef
    target: ImageRef
    steps: tuple[PlanStep, ...] = ()
    reverted: tuple[Reverted, ...] = ()
    warnings: tuple[str, ...] = ()
    blockers: tuple[Blocker, ...] = ()
    expected_applied: tuple[tuple[str, str | None], ...] = ()  # (version, checksum) before
    after_applied: tuple[str, ...] = ()  # versions applied after
    from_history: bool = False  # expectations read from the live database
    # digests of the images whose migrations stay applied after the move although the
    # target lacks them (a code-only rollback keeps them): the next plan needs their undo
    schema_images: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return bool(self.blockers)

    @property
    def summary(self) -> str:
        """One line, for a pipeline variable or an approval page."""
        if self.blocked:
            return (
                f"BLOCKED: {self.direction} {self.source.label} -> {self.target.label}: "
                + "; ".join(b.message for b in self.blockers[:2])
            )
        if self.direction == "none":
            return f"nothing to do: {self.target.label} has the same migrations as deployed"
        shown = [r.version for r in self.reverted[:SUMMARY_VERSIONS]]
        more = len(self.reverted) - len(shown)
        versions = ", ".join(shown + ([f"and {more} more"] if more else [])) or "-"
        if self.strategy == "code-only":
            return (
                f"code-only rollback to {self.target.label}: {len(self.reverted)} additive "
                f"migration(s) stay applied ({versions}); no schema change, no data loss"
            )
        if self.strategy == "undo":
            return (
                f"undo rollback to {self.target.label}: revert {len(self.reverted)} "
                f"migration(s) ({versions}) newest first"
                + (f", then {self.repeatable_count} repeatable(s)" if self.repeatable_count else "")
            )
        return (
            f"forward deploy to {self.target.label}: apply "
            f"{sum(1 for s in self.steps if s.action == 'migrate')} migration(s)"
        )

    @property
    def repeatable_count(self) -> int:
        return sum(1 for s in self.steps if s.action == "repeatable")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "direction": self.direction,
            "strategy": self.strategy,
            "requested": self.requested,
            "summary": self.summary,
            "source": self.source.to_dict(),
            "target": self.target.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "reverted": [r.to_dict() for r in self.reverted],
            "warnings": list(self.warnings),
            "blockers": [b.to_dict() for b in self.blockers],
            "expected": {
                "from_history": self.from_history,
                "applied": [{"version": v, "checksum": c} for v, c in self.expected_applied],
                "after": list(self.after_applied),
                "schema_images": list(self.schema_images),
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Plan:
        if d.get("schema") != PLAN_SCHEMA:
            raise ValueError(f"not a {PLAN_SCHEMA} plan")
        exp = d.get("expected", {})
        return cls(
            direction=d["direction"],
            strategy=d["strategy"],
            requested=d.get("requested", ""),
            source=ImageRef.from_dict(d["source"]),
            target=ImageRef.from_dict(d["target"]),
            steps=tuple(PlanStep.from_dict(s) for s in d.get("steps", ())),
            reverted=tuple(Reverted.from_dict(r) for r in d.get("reverted", ())),
            warnings=tuple(d.get("warnings", ())),
            blockers=tuple(Blocker.from_dict(b) for b in d.get("blockers", ())),
            expected_applied=tuple(
                (a["version"], a.get("checksum")) for a in exp.get("applied", ())
            ),
            after_applied=tuple(exp.get("after", ())),
            from_history=bool(exp.get("from_history", False)),
            schema_images=tuple(exp.get("schema_images", ())),
        )


# ---------------------------------------------------------------- compatibility


@dataclass(frozen=True)
class Compat:
    """Can an image run on a schema? Yes when every applied version it lacks is additive."""

    compatible: bool
    unknown_versions: tuple[str, ...]  # applied, not in the image
    first_breaking: str | None = None
    reason: str = ""
    pending: tuple[str, ...] = ()  # in the image, not applied: its start applies them


def effective_class(m: ManifestMigration, created_in_range: frozenset[str]) -> str:
    """A migration's class for a rollback over a range: data written only into tables the
    range itself created goes away with them, so it counts as additive."""
    if not m.findings:
        return m.klass
    classes = []
    for f in m.findings:
        if f.klass == DATA and f.table and f.table in created_in_range:
            classes.append(ADDITIVE)
        else:
            classes.append(f.klass)
    return max(classes, key=lambda c: SEVERITY.get(c, 3))


def check_compat(image: Manifest, applied: Iterable[Version], known: Iterable[Manifest]) -> Compat:
    """Whether `image` can run on a schema with `applied` versions: every applied version
    it lacks is additive, and none of its own unapplied versions (`pending`: its start
    applies them) is older than the newest applied one (its start would stop there).

    Classes of the versions the image lacks come from `known` manifests (any that has them);
    a version no manifest knows counts as unknown, so as not compatible.
    """
    lookup: dict[Version, ManifestMigration] = {}
    for man in known:
        for m in man.migrations:
            lookup.setdefault(m.version, m)
    applied = set(applied)
    missing = sorted(v for v in applied if image.get(v) is None)
    pending = tuple(str(m.version) for m in image.migrations if m.version not in applied)
    for v in missing:
        m = lookup.get(v)
        klass = effective_class(m, frozenset()) if m else UNKNOWN
        if klass != ADDITIVE:
            why = (
                f"version {v} ({m.description}) is {klass}"
                if m
                else f"version {v} is in no known manifest (also name the image that applied it)"
            )
            return Compat(False, tuple(map(str, missing)), str(v), why, pending)
    newest = max(applied) if applied else None
    late = next(
        (
            m.version
            for m in image.migrations
            if m.version not in applied and newest is not None and m.version < newest
        ),
        None,
    )
    if late is not None:
        return Compat(
            False,
            tuple(map(str, missing)),
            None,
            f"its version {late} is not applied and the newer {newest} is: a `dbroll migrate` "
            "at its start stops there (exit 3) unless --out-of-order (DBROLL_OUT_OF_ORDER=1)",
            pending,
        )
    return Compat(True, tuple(map(str, missing)), pending=pending)


# ---------------------------------------------------------------- versions code-only kept


class _Picked(Mapping[str, bytes]):
    """The script files of carried-over migrations, each read from its own image's files."""

    def __init__(self, owners: dict[str, Mapping[str, bytes]]) -> None:
        self._owners = owners

    def __getitem__(self, path: str) -> bytes:
        return self._owners[path][path]

    def __contains__(self, path: object) -> bool:
        return path in self._owners

    def __iter__(self) -> Iterator[str]:
        return iter(self._owners)

    def __len__(self) -> int:
        return len(self._owners)


def carry_over(
    deployed: Manifest,
    carried: Sequence[tuple[Manifest, ImageRef]],
    applied: Mapping[Version, str | None] | None,
) -> tuple[Manifest, dict[Version, ImageRef]]:
    """The deployed manifest plus the migrations of `carried` images that it lacks and that
    stayed applied: what a code-only rollback from those images left in the database.

    `applied` is the live history (version -> recorded checksum, None when unknown): a
    carried migration counts when it is applied there with its script's checksum. Without
    history (None), every carried migration the deployed image lacks counts: the service's
    record says they stayed applied. The first image that has a version gives it; a script
    whose path the deployed image also uses is left out (its bytes could not be told apart).
    Returns the merged manifest and, for each version taken, the image it came from."""
    if not carried:
        return deployed, {}
    have = deployed.by_version
    taken: dict[Version, ManifestMigration] = {}
    owner: dict[Version, ImageRef] = {}
    files: dict[str, Mapping[str, bytes]] = {}
    used: set[str] | None = None
    for man, ref in carried:
        for m in man.migrations:
            v = m.version
            if v in have or v in taken:
                continue
            if applied is not None:
                if v not in applied:
                    continue
                recorded = applied[v]
                if recorded and recorded != m.up.sha256:
                    continue
            if used is None:
                used = {s.path for d in deployed.migrations for s in (d.up, d.undo) if s}
            scripts = [s for s in (m.up, m.undo) if s is not None]
            if any(s.path in used for s in scripts):
                continue
            taken[v] = m
            owner[v] = ref
            for script in scripts:
                files[script.path] = man.files
    if not taken:
        return deployed, {}
    merged = Manifest(
        deployed.app_version,
        deployed.format,
        tuple(sorted((*deployed.migrations, *taken.values()), key=_mkey)),
        deployed.repeatables,
        ChainMap(deployed.files, _Picked(files)),  # type: ignore[arg-type]
    )
    return merged, owner


def _schema_images(
    versions: Iterable[Version], owners: Mapping[Version, ImageRef], deployed: set, source: ImageRef
) -> tuple[str, ...]:
    """The digests of the images that own `versions` (carried over, else the deployed one)."""
    out: list[str] = []
    for v in versions:
        ref = owners.get(v) or (source if v in deployed else None)
        if ref is not None and ref.digest and ref.digest not in out:
            out.append(ref.digest)
    return tuple(out)


# ---------------------------------------------------------------- the plan


def _resumable(row: Any, deployed: Manifest, target: Manifest) -> bool:
    """A failed or interrupted step of this same move (an undo of a version the target lacks,
    or a migrate of a target version) that the bundle can continue."""
    if not row.version:
        return False
    v = Version.parse(row.version)
    if row.kind == "undo" and target.get(v) is None and deployed.get(v) is not None:
        undo = deployed.get(v).undo
        if undo is None:  # a generated undo (--allow-generated-undo) may have run
            from pipeline.undo_gen import generated_undo_files

            g = generated_undo_files(deployed, [v]).get(v)
            return getattr(g, "sha256", None) == row.checksum
        return undo.sha256 == row.checksum
    if row.kind == "migrate" and deployed.get(v) is None and target.get(v) is not None:
        return target.get(v).up.sha256 == row.checksum
    return False


def _make_plan(
    deployed: Manifest,
    target: Manifest,
    history: History | None = None,
    *,
    strategy: str = "auto",
    force_code_only: bool = False,
    source: ImageRef | None = None,
    target_ref: ImageRef | None = None,
    allow_generated_undo: bool = False,
    carried: Sequence[tuple[Manifest, ImageRef]] = (),
    out_of_order: bool = False,
) -> Plan:
    """Plan the move from the deployed image to the target image.

    carried: the manifests (and refs) of images whose migrations an earlier code-only
    rollback left applied although the deployed image lacks them (the service's
    `io.dbroll.schema-images` label names them). A rollback reverts those too when the
    target lacks them, newest first, with their own images' undo scripts (see carry_over).

    allow_generated_undo: a version to revert without an undo script gets the undo dbroll
    generates from its forward script when every statement has an exact inverse (marked
    generated in every rendering); otherwise it stays a blocker, with the reasons.

    out_of_order: a forward move may apply versions older than the newest one applied
    (`migrate --out-of-order`); otherwise that is a blocker, as the runner would stop."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    source = source or ImageRef(manifest_sha256=deployed.sha256, app_version=deployed.app_version)
    target_ref = target_ref or ImageRef(
        manifest_sha256=target.sha256, app_version=target.app_version
    )
    blockers: list[Blocker] = []
    warnings: list[str] = []
    # Version hashes in Python: sets and dicts built from these mappings reuse the hashes
    # they store, and lookups go through the dicts' own get
    D, T = set(deployed.by_version), set(target.by_version)

    if history is not None:
        applied = {v: (row.checksum or None) for v, row in history.applied.items()}
    else:
        applied = {m.version: m.up.sha256 for m in deployed.migrations}
    # from here on `deployed` also holds what code-only rollbacks kept (D stays the image's)
    deployed, owners = carry_over(deployed, carried, applied if history is not None else None)
    if history is None:
        applied.update((v, deployed.by_version[v].up.sha256) for v in owners)
    deployed_by, target_by = deployed.by_version, target.by_version
    dget, tget = deployed_by.get, target_by.get
    if history is not None:
        b = history.blocked
        if b is not None and not _resumable(b, deployed, target):
            blockers.append(
                Blocker(
                    "history-blocked",
                    f"{b.subject} ({b.kind}) is {b.status} at statement {b.statements_done + 1}",
                    "finish it first: `dbroll resume`, or `dbroll repair --as applied|reverted`",
                    b.version,
                )
            )
        elif b is not None:
            warnings.append(
                f"{b.subject} ({b.kind}) stopped at statement {b.statements_done + 1} in an "
                "earlier run of this move; the bundle continues it there"
            )
    A = set(applied)
    # Every version any side knows, in order, sorted once. The manifests list their
    # versions in order (and history mostly does), so timsort merges a few sorted runs in
    # linear time; every ordered subset below is a filter of this list, not a fresh sort.
    order = sorted({**deployed_by, **target_by, **applied}, key=_vkey)
    # (version, applied, in deployed, in target), each looked up once: Version hashes in
    # Python, and these filters run over every version
    where = [(v, v in A, v in deployed_by, v in T) for v in order]

    def beyond() -> list[Version]:
        """Applied versions the target lacks (before the move's undo steps, if any)."""
        return [v for v, a, _, t in where if a and not t]

    ordered_A = [v for v, a, _, _ in where if a]
    expected = tuple([(str(v), applied[v]) for v in ordered_A])

    strangers = [v for v, a, d, t in where if a and not d and not t]
    for v in strangers:
        blockers.append(
            Blocker(
                "unknown-version",
                f"the database has version {v}, which neither image knows",
                "it was applied by hand, from another branch, or by a newer image that a "
                "code-only rollback replaced: plan from the service (--from-service: its "
                f"{SCHEMA_IMAGES_LABEL} label or {SCHEMA_IMAGE_TAG}* tags name such "
                "images), deploy the image that has "
                "it, or undo it with that image's migrations first",
                str(v),
            )
        )
    for v in (v for v, a, _, _ in where if a and v in D):
        recorded = applied[v]
        if recorded and recorded != dget(v).up.sha256:
            blockers.append(
                Blocker(
                    "checksum",
                    f"version {v}: the database ran a script with checksum "
                    f"{recorded[:12]}, the deployed image has {deployed.get(v).up.sha256[:12]}",
                    "the deployed image is not the one that migrated this database; plan from the "
                    "image that did (or `dbroll repair --checksums` if the change is known)",
                    str(v),
                )
            )
    for v in (v for v, a, _, t in where if a and t and v in D):
        if dget(v).up.sha256 != tget(v).up.sha256:
            warnings.append(
                f"version {v} differs between the deployed and the target image "
                "(edited after release)"
            )

    if T - D and D - T:
        blockers.append(
            Blocker(
                "divergent",
                "the target has versions the deployed image never had ("
                + ", ".join(map(str, (v for v, _, _, t in where if t and v not in D)))
                + "), and lacks some it has ("
                + ", ".join(map(str, (v for v, _, _, t in where if not t and v in D)))
                + ")",
                "the images come from diverging branches (a hotfix not merged back, say): build "
                "the target from a branch that has both, or roll back to a common ancestor first",
            )
        )
        direction = "rollback"
    elif T - D:
        direction = "forward"
    elif D - T:
        direction = "rollback"
    elif T - A:
        direction = "forward"
    else:
        # the same image on both sides (its digest): bringing the schema back to it can only
        # mean reverting what is applied beyond it (kept by a code-only rollback, or applied
        # by a deployment CodeDeploy rolled back); another image with the same migrations
        # is a code hotfix, which keeps them
        same = bool(source and target_ref and source.digest and source.digest == target_ref.digest)
        direction = "rollback" if same and owners else "none"

    if direction == "forward":
        todo = [m for m in target.migrations if m.version not in A]
        steps = tuple(
            PlanStep(
                "migrate",
                str(m.version),
                m.description,
                m.klass,
                m.up.path,
                m.up.source,
                m.up.sha256,
                m.transaction,
            )
            for m in todo
        )
        newest = ordered_A[-1] if ordered_A else None
        late: list[str] = []
        # usually every new version is newer than what is applied: one comparison (in C)
        if todo and newest is not None and min(todo, key=_mkey).version.parts < newest.parts:
            late = [str(m.version) for m in todo if m.version.parts < newest.parts]
        if late:
            why = (
                f" (from {owners[newest].label}: a code-only rollback kept it)"
                if newest in owners
                else ""
            )
            what = (
                f"version {', '.join(late)} of the target would be applied after version "
                f"{newest}, which is newer and applied{why}"
            )
            if out_of_order:
                warnings.append(f"{what}: out of order, as asked")
            else:
                blockers.append(
                    Blocker(
                        "out-of-order",
                        what,
                        f"give version {late[0]} a number after {newest} (rename its file) and "
                        "build again, or deploy with --out-of-order to apply it anyway (as "
                        "`dbroll migrate --out-of-order` does)",
                        late[0],
                    )
                )
        after = tuple(str(v) for v, a, _, t in where if a or t)
        return Plan(
            "forward",
            "migrate",
            strategy,
            source,
            target_ref,
            steps,
            (),
            tuple(warnings),
            tuple(blockers),
            expected,
            after,
            history is not None,
            schema_images=_schema_images(beyond(), owners, D, source),
        )

    # a carried-over version goes back only in a rollback: with the same migrations on both
    # sides (a hotfix of the image a code-only rollback went to) it stays, as it did
    to_revert = [
        v
        for v, a, d, t in reversed(where)
        if a and d and not t and (direction == "rollback" or v in D)
    ]
    taken = [v for v in reversed(to_revert) if v in owners]
    for ref in dict.fromkeys(owners[v] for v in taken):
        warnings.append(
            "version "
            + ", ".join(str(v) for v in taken if owners[v] == ref)
            + f" came from {ref.label} and stayed applied after a code-only rollback; "
            "its scripts come from that image's manifest"
        )
    for v in (v for v, a, d, t in where if d and not t and not a):
        warnings.append(
            f"version {v} of the deployed image is not applied in the database; "
            "nothing to revert for it"
        )
    pending_target = [v for v, a, _, t in where if t and not a]
    if pending_target:
        warnings.append(
            "target versions not applied in the database (its container applies "
            "them at start): " + ", ".join(map(str, pending_target))
        )
    range_migs = [dget(v) for v in to_revert]
    created = frozenset(t for m in range_migs for t in m.created_tables)
    reverted = tuple(
        [
            Reverted(
                str(m.version),
                m.description,
                effective_class(m, created),
                tuple([f"{f.code} ({f.path}:{f.line}): {f.message}" for f in m.findings])
                if m.findings
                else (),
            )
            for m in range_migs
        ]
    )
    not_additive = [r for r in reverted if r.klass != ADDITIVE]
    after = tuple(str(v) for v, a, d, t in where if a and not (d and not t))

    if not to_revert:
        return Plan(
            "none",
            "none",
            strategy,
            source,
            target_ref,
            (),
            (),
            tuple(warnings),
            tuple(blockers),
            expected,
            tuple(map(str, ordered_A)),
            history is not None,
            schema_images=_schema_images(beyond(), owners, D, source),
        )

    chosen = strategy
    if strategy == "auto":
        # an undo left half-way by an earlier run of this move must be finished, not kept
        continuing = (
            history is not None
            and history.blocked is not None
            and (history.blocked.kind == "undo" and _resumable(history.blocked, deployed, target))
        )
        chosen = "code-only" if not not_additive and not continuing else "undo"
    if chosen == "code-only":
        hard = [r for r in not_additive if r.klass in (BREAKING, UNKNOWN)]
        if hard and not force_code_only:
            blockers.append(
                Blocker(
                    "not-additive",
                    "code-only rollback refused: "
                    + ", ".join(f"version {r.version} is {r.klass}" for r in hard),
                    "the old code may not run on this schema: use --strategy undo (or auto), or "
                    "--force-code-only if you know the old code copes",
                    hard[0].version,
                )
            )
        for r in not_additive:
            if r not in hard or force_code_only:
                warnings.append(f"version {r.version} is {r.klass}; code-only keeps it applied")
        return Plan(
            "rollback",
            "code-only",
            strategy,
            source,
            target_ref,
            (),
            reverted,
            tuple(warnings),
            tuple(blockers),
            expected,
            tuple(map(str, ordered_A)),
            history is not None,
            schema_images=_schema_images(beyond(), owners, D, source),
        )

    steps: list[PlanStep] = []
    generated: dict[Version, Any] = {}
    lacking = [m.version for m in range_migs if m.undo is None]
    if allow_generated_undo and lacking:
        from pipeline.undo_gen import GeneratedUndoFile, generated_undo_files

        generated = generated_undo_files(deployed, lacking)
    for m, rev in zip(range_migs, reverted, strict=True):
        if m.undo is None:
            g = generated.get(m.version)
            if g is not None and isinstance(g, GeneratedUndoFile):
                steps.append(
                    PlanStep(
                        "undo",
                        rev.version,
                        m.description,
                        rev.klass,
                        g.path,
                        g.source,
                        g.sha256,
                        m.transaction,
                        generated=True,
                    )
                )
                warnings.append(
                    f"version {m.version}: undo generated by dbroll from {m.up.source}; "
                    "review it (`dbroll bundle show`)"
                )
                continue
            why = "; ".join(g.reasons) if g is not None else ""
            blockers.append(
                Blocker(
                    "missing-undo",
                    f"version {m.version} ({m.up.source}) has no undo script"
                    + (f", and none can be generated: {why}" if why else ""),
                    "write its undo script and rebuild the deployed image's manifest, or roll "
                    "forward with a new migration instead"
                    + (
                        ""
                        if allow_generated_undo
                        else "; `dbroll undo-gen` proposes one where "
                        "the inverse is exact (--allow-generated-undo uses it)"
                    ),
                    str(m.version),
                )
            )
            continue
        steps.append(
            PlanStep(
                "undo",
                rev.version,
                m.description,
                rev.klass,
                m.undo.path,
                m.undo.source,
                m.undo.sha256,
                m.transaction,
            )
        )
    deployed_reps = {r.name: r.script.sha256 for r in deployed.repeatables}
    ran = history.repeatables if history is not None else None
    for r in target.repeatables:
        current = ran.get(r.script.source) if ran is not None else deployed_reps.get(r.name)
        if current != r.script.sha256:
            steps.append(
                PlanStep(
                    "repeatable",
                    None,
                    r.description,
                    ADDITIVE,
                    r.script.path,
                    r.script.source,
                    r.script.sha256,
                )
            )
    return Plan(
        "rollback",
        "undo",
        strategy,
        source,
        target_ref,
        tuple(steps),
        reverted,
        tuple(warnings),
        tuple(blockers),
        expected,
        after,
        history is not None,
    )  # an undo leaves nothing the target lacks: no schema_images


# ---------------------------------------------------------------- files and renderings


def plan_files(
    plan: Plan,
    deployed: Manifest,
    target: Manifest,
    carried: Sequence[tuple[Manifest, ImageRef]] = (),
) -> dict[str, bytes]:
    """The scripts a bundle of this plan must carry: undo from the deployed image's
    manifest (or, for a version a code-only rollback kept, from the `carried` image's that
    the plan took it from), migrate and repeatable scripts from the target's."""
    if carried:  # the same choice as make_plan's: the plan's expected history decides it
        applied = {Version.parse(v): c for v, c in plan.expected_applied}
        deployed, _ = carry_over(deployed, carried, applied)
    files: dict[str, bytes] = {}
    gen = [Version.parse(st.version) for st in plan.steps if st.generated and st.version]
    if gen:
        from pipeline.undo_gen import generated_undo_files

        made = generated_undo_files(deployed, gen)
        for st in plan.steps:
            if st.generated and st.version:
                f = made[Version.parse(st.version)]
                if getattr(f, "sha256", None) != st.sha256:
                    raise ValueError(f"the generated undo of {st.version} changed since planning")
                files[st.path] = f.data  # type: ignore[union-attr]
    for step in plan.steps:
        if step.generated:
            continue
        source = deployed if step.action == "undo" else target
        data = source.files.get(step.path)
        if data is None:
            raise ValueError(f"{step.path} is not in the manifest")
        files[step.path] = data
    return files


def _rows(plan: Plan) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    if plan.strategy == "code-only":
        for r in plan.reverted:
            rows.append((r.version, r.description[:48], r.klass, "keep (code-only)"))
    for s in plan.steps:
        action = {"undo": "undo", "migrate": "apply", "repeatable": "re-apply"}[s.action]
        if s.generated:
            action += " (generated)"
        rows.append((s.version or s.source, s.description[:48], s.klass, action))
    return rows


def _render_text(plan: Plan) -> str:
    out = [
        plan.summary,
        f"  from {plan.source.label}",
        f"  to   {plan.target.label}",
        f"  strategy {plan.strategy} (asked: {plan.requested}); "
        f"history {'from the live database' if plan.from_history else 'from the manifests'}",
    ]
    rows = _rows(plan)
    if rows:
        out += ["", render_table(("version", "description", "class", "action"), rows)]
    for w in plan.warnings:
        out.append(f"warning: {w}")
    for b in plan.blockers:
        out.append(f"BLOCKED [{b.code}]: {b.message}\n  what to do: {b.hint}")
    return "\n".join(out)


def render_markdown(plan: Plan) -> str:
    out = [
        f"**{plan.summary}**",
        "",
        f"- from: `{plan.source.label}`",
        f"- to: `{plan.target.label}`",
        f"- strategy: **{plan.strategy}** (asked: {plan.requested})",
        f"- history: {'live database' if plan.from_history else 'manifests only'}",
        "",
    ]
    rows = _rows(plan)
    if rows:
        out += [
            render_table(("version", "description", "class", "action"), rows, markdown=True),
            "",
        ]
    risks = [f"- version {r.version} ({r.klass}): {f}" for r in plan.reverted for f in r.findings]
    if plan.blockers or plan.warnings or risks:
        out.append("### Risks")
        out += [f"- **blocked** ({b.code}): {b.message}. {b.hint}" for b in plan.blockers]
        out += [f"- {w}" for w in plan.warnings]
        out += risks
    return "\n".join(out) + "\n"
