"""The rollback plan: every strategy, every blocker, forward and rollback (pure)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

import pytest

from pipeline.db.history import History, HistoryRow
from pipeline.manifest import Manifest, ManifestMigration, ManifestRepeatable, ScriptRef
from pipeline.migrations.lint import Finding
from pipeline.migrations.model import Version
from pipeline.plan import (
    ImageRef,
    Plan,
    check_compat,
    make_plan,
    plan_files,
    render_markdown,
    render_text,
)

CLASSES = {"a": "additive", "b": "breaking", "d": "data", "u": "unknown"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def entry(
    version: str,
    klass: str = "additive",
    *,
    undo: bool = True,
    body: str = "",
    created: tuple[str, ...] = (),
    data_table: str | None = None,
) -> ManifestMigration:
    up_text = body or f"-- up {version}"
    findings = ()
    if klass != "additive":
        findings = (
            Finding(
                code=f"{klass}-thing",
                klass=klass,
                path=f"V{version}__x.sql",
                line=1,
                message=f"{klass} change",
                hint="do it in steps",
                table=data_table,
            ),
        )
    return ManifestMigration(
        version=Version.parse(version),
        description=f"m{version}",
        up=ScriptRef(f"sql/up/{version}__m.sql", f"V{version}__m.sql", sha(up_text)),
        undo=ScriptRef(f"sql/undo/{version}__m.sql", f"U{version}__m.sql", sha(f"undo {version}"))
        if undo
        else None,
        transaction=True,
        klass=klass,
        findings=findings,
        created_tables=created,
    )


def manifest(*entries: ManifestMigration, repeatables: dict[str, str] | None = None) -> Manifest:
    reps = tuple(
        ManifestRepeatable(n, n, ScriptRef(f"sql/repeatable/{n}.sql", f"R__{n}.sql", sha(body)))
        for n, body in (repeatables or {}).items()
    )
    return Manifest("1.0", "flyway", tuple(entries), reps)


def spec(s: str) -> Manifest:
    """'1a 2a 3b' -> versions 1..3 with classes additive, additive, breaking."""
    return manifest(*(entry(tok[:-1], CLASSES[tok[-1]]) for tok in s.split()))


_ids = iter(range(1, 100_000))


def hrow(version, kind="migrate", status="success", checksum=None, script=None, done=0):
    applied = {"migrate": True, "undo": False}.get(kind) if status == "success" else None
    return HistoryRow(
        next(_ids),
        version,
        "",
        kind,
        script,
        checksum,
        status,
        applied,
        done,
        None,
        None,
        datetime(2026, 1, 1),
        None,
        None,
        "t",
        None,
        None,
        None,
    )


def history_of(m: Manifest, versions: list[str] | None = None) -> History:
    rows = [
        hrow(str(x.version), checksum=x.up.sha256)
        for x in m.migrations
        if versions is None or str(x.version) in versions
    ]
    return History(tuple(rows))


@pytest.mark.parametrize(
    ("deployed", "target", "strategy", "want_strategy", "want_steps", "want_blockers"),
    [
        ("1a 2a 3a", "1a", "auto", "code-only", [], []),
        ("1a 2a 3b", "1a", "auto", "undo", ["undo 3", "undo 2"], []),
        ("1a 2d", "1a", "auto", "undo", ["undo 2"], []),
        ("1a 2u", "1a", "auto", "undo", ["undo 2"], []),
        ("1a 2a 3a", "1a", "undo", "undo", ["undo 3", "undo 2"], []),
        ("1a 2b", "1a", "code-only", "code-only", [], ["not-additive"]),
        ("1a 2u", "1a", "code-only", "code-only", [], ["not-additive"]),
        ("1a 2d", "1a", "code-only", "code-only", [], []),
        ("1a 2a", "1a 2a", "auto", "none", [], []),
        ("1a", "1a 2a 3b", "auto", "migrate", ["migrate 2", "migrate 3"], []),
        (
            "1a 2a 3a 4b 5a 6a 7d 8a 9a 10a 11a 12a",
            "1a 2a 3a",
            "auto",
            "undo",
            [f"undo {v}" for v in range(12, 3, -1)],
            [],
        ),
        ("1a 2a 3a 4a 5a 6a 7a 8a 9a 10a 11a 12a", "1a 2a 3a", "auto", "code-only", [], []),
        ("1.1a 1.2a 1.10b", "1.1a 1.2a", "auto", "undo", ["undo 1.10"], []),
    ],
)
def test_strategies_from_manifests(
    deployed, target, strategy, want_strategy, want_steps, want_blockers
):
    p = make_plan(spec(deployed), spec(target), strategy=strategy)
    assert p.strategy == want_strategy
    assert [f"{s.action} {s.version}" for s in p.steps] == want_steps
    assert [b.code for b in p.blockers] == want_blockers
    assert Plan.from_dict(p.to_dict()) == p  # the bundle's plan.json round-trips


def test_force_code_only_turns_the_blocker_into_a_warning():
    p = make_plan(spec("1a 2b"), spec("1a"), strategy="code-only", force_code_only=True)
    assert not p.blocked and p.strategy == "code-only"
    assert any("version 2 is breaking" in w for w in p.warnings)


def test_missing_undo_blocks_undo_but_not_code_only():
    d = manifest(entry("1"), entry("2", "breaking", undo=False), entry("3", "additive"))
    p = make_plan(d, spec("1a"))
    assert [b.code for b in p.blockers] == ["missing-undo"] and p.blockers[0].version == "2"
    assert "V2__m.sql" in p.blockers[0].message
    d2 = manifest(entry("1"), entry("2", undo=False))
    assert not make_plan(d2, spec("1a")).blocked  # additive: code-only needs no undo


def test_unknown_db_version_blocks():
    d, t = spec("1a 2a 3b"), spec("1a")
    h = History((*history_of(d).rows, hrow("7", checksum="x")))
    p = make_plan(d, t, h)
    assert "unknown-version" in [b.code for b in p.blockers]
    assert any(b.version == "7" for b in p.blockers)


@pytest.mark.parametrize("status", ["failed", "running"])
def test_failed_or_running_row_blocks(status):
    d, t = spec("1a 2b"), spec("1a")
    h = History((*history_of(d).rows, hrow("3", status=status, done=2)))
    p = make_plan(d, t, h)
    assert "history-blocked" in [b.code for b in p.blockers]
    assert "statement 3" in p.blockers[0].message


def test_checksum_in_db_differing_from_deployed_manifest_blocks():
    d, t = spec("1a 2b"), spec("1a")
    h = History(
        (hrow("1", checksum=d.get(Version.parse("1")).up.sha256), hrow("2", checksum="f" * 64))
    )
    p = make_plan(d, t, h)
    assert [b.code for b in p.blockers] == ["checksum"] and p.blockers[0].version == "2"


def test_divergent_branches_block():
    p = make_plan(spec("1a 2a 3a"), spec("1a 2a 4a"))
    assert [b.code for b in p.blockers] == ["divergent"]
    assert "never had (4), and lacks some it has (3)" in p.blockers[0].message


def test_history_drives_what_is_reverted():
    # the deployed image has 1..4 but the database never got 4: only 3 and 2 are reverted
    d, t = spec("1a 2b 3b 4b"), spec("1a")
    p = make_plan(d, t, history_of(d, ["1", "2", "3"]))
    assert [s.version for s in p.steps] == ["3", "2"]
    assert p.from_history and p.expected_applied == tuple(
        (v, d.get(Version.parse(v)).up.sha256) for v in ("1", "2", "3")
    )
    assert p.after_applied == ("1",)
    assert any("version 4" in w for w in p.warnings)


def test_skipped_versions_in_history():
    d, t = spec("1a 2b 3b 4b"), spec("1a 2b")
    p = make_plan(d, t, history_of(d, ["1", "2", "4"]))  # 3 was skipped (never applied)
    assert [s.version for s in p.steps] == ["4"]


def test_data_into_tables_created_in_the_range_counts_as_additive():
    d = manifest(
        entry("1"), entry("2", created=("coupons",)), entry("3", "data", data_table="coupons")
    )
    p = make_plan(d, spec("1a"))
    assert p.strategy == "code-only" and [r.klass for r in p.reverted] == ["additive"] * 2
    d2 = manifest(
        entry("1"), entry("2", created=("coupons",)), entry("3", "data", data_table="customers")
    )
    assert make_plan(d2, spec("1a")).strategy == "undo"


def test_target_repeatables_are_reapplied_when_they_differ():
    d = manifest(entry("1"), entry("2", "breaking"), repeatables={"views": "new", "same": "x"})
    t = manifest(entry("1"), repeatables={"views": "old", "same": "x"})
    p = make_plan(d, t)
    assert [(s.action, s.source) for s in p.steps] == [
        ("undo", "U2__m.sql"),
        ("repeatable", "R__views.sql"),
    ]


def test_renderings_name_versions_and_blockers():
    p = make_plan(spec("1a 2a 3b"), spec("1a"))
    text, md = render_text(p), render_markdown(p)
    for out in (text, md):
        assert "undo" in out and "3" in out and "breaking" in out
    assert md.startswith("**undo rollback") and "| version |" in md
    blocked = make_plan(spec("1a 2b"), spec("1a"), strategy="code-only")
    assert "BLOCKED" in render_text(blocked) and "not-additive" in render_text(blocked)
    assert blocked.summary.startswith("BLOCKED")


def test_compat_uses_the_same_rule_as_code_only():
    v3 = spec("1a 2a 3a 4b")
    applied = list(v3.versions)
    ok = check_compat(spec("1a 2a"), applied[:3], [v3])
    assert ok.compatible and ok.unknown_versions == ("3",)
    bad = check_compat(spec("1a 2a"), applied, [v3])
    assert not bad.compatible and bad.first_breaking == "4"
    unknown = check_compat(spec("1a"), [Version.parse("1"), Version.parse("9")], [v3])
    assert not unknown.compatible and unknown.first_breaking == "9"


@pytest.mark.parametrize("n", [10, 1000])
def test_plans_scale(n):
    d = manifest(
        *(entry(str(i), "breaking" if i % 7 == 0 else "additive") for i in range(1, n + 1))
    )
    t = manifest(*d.migrations[: n // 2])
    p = make_plan(d, t, history_of(d))
    assert len(p.steps) == n - n // 2
    assert [int(s.version) for s in p.steps] == list(range(n, n // 2, -1))


def test_an_undo_left_half_way_by_this_move_is_continued_not_blocked():
    d, t = spec("1a 2a 3a"), spec("1a")
    undo3 = d.get(Version.parse("3")).undo.sha256
    rows = (*history_of(d).rows, hrow("3", "undo", status="failed", checksum=undo3, done=1))
    p = make_plan(d, t, History(rows))
    # all additive, yet not code-only: the half-done undo must be finished
    assert not p.blocked and p.strategy == "undo"
    assert [s.version for s in p.steps] == ["3", "2"]
    assert any("earlier run" in w for w in p.warnings)
    other = (*history_of(d).rows, hrow("3", "undo", status="failed", checksum="x" * 64))
    assert [b.code for b in make_plan(d, t, History(other)).blockers] == ["history-blocked"]


@pytest.mark.parametrize(("n", "strategy"), [(3, "undo"), (25, "undo"), (25, "code-only")])
def test_summary_names_at_most_20_versions_and_counts_the_rest(n, strategy):
    # one line for a pipeline variable or an approval page, even for a huge rollback
    deployed = spec(" ".join(f"{i}a" for i in range(1, n + 1)))
    p = make_plan(deployed, spec(""), strategy=strategy)
    assert len(p.reverted) == n
    named = [str(v) for v in range(n, max(n - 20, 0), -1)]  # newest first
    listed = re.search(r"migration\(s\) (?:stay applied )?\(([^)]*)\)", p.summary)[1].split(", ")
    assert listed == named + ([f"and {n - 20} more"] if n > 20 else [])


# ------------------------------------------------ versions an earlier code-only rollback kept


def with_files(m: Manifest, tag: str) -> Manifest:
    """`m` with the bytes of each script, marked with `tag` (which image they came from)."""
    files = {}
    for x in m.migrations:
        for s in (x.up, x.undo):
            if s is not None:
                files[s.path] = f"-- {tag}: {s.source}".encode()
    return Manifest(m.app_version, m.format, m.migrations, m.repeatables, files)


V4_REF = ImageRef("shop", "sha256:" + "4" * 64, "v4")
V3_REF = ImageRef("shop", "sha256:" + "3" * 64, "v3")


def test_a_code_only_rollback_names_the_image_whose_migrations_stay_applied():
    p = make_plan(spec("1a 2a 3b 4a"), spec("1a 2a 3b"), source=V4_REF)
    assert p.strategy == "code-only" and p.schema_images == (V4_REF.digest,)
    # an undo leaves nothing the target lacks
    u = make_plan(spec("1a 2a 3b 4a"), spec("1a 2a 3b"), source=V4_REF, strategy="undo")
    assert u.strategy == "undo" and u.schema_images == ()
    assert Plan.from_dict(p.to_dict()).schema_images == p.schema_images


@pytest.mark.parametrize("live", [False, True])
def test_the_next_rollback_undoes_what_code_only_kept_with_that_images_script(live):
    v4 = with_files(spec("1a 2a 3b 4a"), "v4")
    v3, v2 = with_files(spec("1a 2a 3b"), "v3"), spec("1a 2a")
    history = history_of(v4) if live else None
    p = make_plan(v3, v2, history, source=V3_REF, carried=[(v4, V4_REF)])
    assert not p.blocked and p.strategy == "undo"
    assert [(s.action, s.version) for s in p.steps] == [("undo", "4"), ("undo", "3")]
    assert [v for v, _ in p.expected_applied] == ["1", "2", "3", "4"]
    assert p.after_applied == ("1", "2") and p.schema_images == ()
    assert any("version 4 came from shop:v4@" in w for w in p.warnings), p.warnings
    files = plan_files(p, v3, v2, [(v4, V4_REF)])
    assert [files[s.path] for s in p.steps] == [b"-- v4: U4__m.sql", b"-- v3: U3__m.sql"]
    # without the carried manifest: the database's version 4 is a stranger (history), or
    # the plan expects what the database is not (no history: the task would find it stale)
    bare = make_plan(v3, v2, history, source=V3_REF)
    if live:
        assert [b.code for b in bare.blockers] == ["unknown-version"]
    else:
        assert [v for v, _ in bare.expected_applied] == ["1", "2", "3"]


def test_a_carried_version_counts_only_as_the_database_has_it():
    v4, v3, v2 = spec("1a 2a 3b 4a"), spec("1a 2a 3b"), spec("1a 2a")
    # not applied (undone by hand since): nothing of v4 is taken
    p = make_plan(v3, v2, history_of(v3), source=V3_REF, carried=[(v4, V4_REF)])
    assert [s.version for s in p.steps] == ["3"] and not p.warnings
    # applied with another script than v4's: a stranger, still blocked
    rows = (*history_of(v3).rows, hrow("4", checksum="f" * 64))
    p = make_plan(v3, v2, History(rows), source=V3_REF, carried=[(v4, V4_REF)])
    assert [b.code for b in p.blockers] == ["unknown-version"]


def test_code_only_again_keeps_both_images_on_record():
    v4, v3, v2 = spec("1a 2a 3a 4a"), spec("1a 2a 3a"), spec("1a 2a")
    p = make_plan(v3, v2, source=V3_REF, carried=[(v4, V4_REF)])
    assert p.strategy == "code-only" and [r.version for r in p.reverted] == ["4", "3"]
    assert p.schema_images == (V3_REF.digest, V4_REF.digest)


def test_a_hotfix_of_the_rolled_back_to_image_keeps_the_carried_versions():
    v4, v3 = spec("1a 2a 3b 4a"), spec("1a 2a 3b")
    hotfix = ImageRef("shop", "sha256:" + "5" * 64, "v3.1")
    # same migrations (a code fix): version 4 is not the hotfix's to revert; it stays
    p = make_plan(v3, v3, source=V3_REF, target_ref=hotfix, carried=[(v4, V4_REF)])
    assert p.direction == "none" and not p.steps and not p.blocked
    assert p.schema_images == (V4_REF.digest,)
    # forward with a new version: version 4 is not applied again, and stays on record
    fwd = make_plan(v3, spec("1a 2a 3b 3.1a"), source=V3_REF, carried=[(v4, V4_REF)])
    assert [s.version for s in fwd.steps] == ["3.1"]
    assert fwd.schema_images == (V4_REF.digest,)
    # forward to an image that has version 4: nothing carried any more
    back = make_plan(v3, v4, source=V3_REF, carried=[(v4, V4_REF)])
    assert back.schema_images == () and not back.steps


def test_the_image_the_service_runs_as_target_reverts_what_is_applied_beyond_it():
    """CodeDeploy put traffic back on v3 after its hook applied v4's version 4 (or a
    code-only rollback kept it): a rollback to v3 itself undoes it with v4's script when it
    is breaking, keeps it when additive, and with nothing beyond has nothing to do."""
    v3 = spec("1a 2a 3b")
    breaking = with_files(spec("1a 2a 3b 4b"), "v4")
    p = make_plan(v3, v3, source=V3_REF, target_ref=V3_REF, carried=[(breaking, V4_REF)])
    assert p.direction == "rollback" and p.strategy == "undo" and not p.blocked
    assert [(s.action, s.version) for s in p.steps] == [("undo", "4")]
    files = plan_files(p, v3, v3, [(breaking, V4_REF)])
    assert [files[s.path] for s in p.steps] == [b"-- v4: U4__m.sql"]
    assert p.schema_images == ()
    additive = make_plan(
        v3, v3, source=V3_REF, target_ref=V3_REF, carried=[(spec("1a 2a 3b 4a"), V4_REF)]
    )
    assert additive.strategy == "code-only" and additive.schema_images == (V4_REF.digest,)
    alone = make_plan(v3, v3, source=V3_REF, target_ref=V3_REF)
    assert alone.direction == "none" and not alone.steps


def test_a_forward_move_below_the_newest_applied_version_blocks_unless_asked():
    v4, v3 = spec("1a 2a 3b 4a"), spec("1a 2a 3b")
    hotfix = spec("1a 2a 3b 3.1a")
    p = make_plan(v3, hotfix, source=V3_REF, carried=[(v4, V4_REF)])
    assert [b.code for b in p.blockers] == ["out-of-order"] and p.blockers[0].version == "3.1"
    assert "after version 4" in p.blockers[0].message and "shop:v4@" in p.blockers[0].message
    assert "--out-of-order" in p.blockers[0].hint
    ok = make_plan(v3, hotfix, source=V3_REF, carried=[(v4, V4_REF)], out_of_order=True)
    assert not ok.blocked and [s.version for s in ok.steps] == ["3.1"]
    assert any("out of order, as asked" in w for w in ok.warnings)
    # numbered after it: in order, nothing to ask
    assert not make_plan(v3, spec("1a 2a 3b 4.1a"), carried=[(v4, V4_REF)]).blocked
    # the same without any carried image: a target version older than the deployed newest
    assert [b.code for b in make_plan(v3, spec("1a 2a 2.5a 3b")).blockers] == ["out-of-order"]


def test_compat_lists_what_an_images_start_applies_and_refuses_an_out_of_order_start():
    applied = [Version.parse(v) for v in ("1", "2", "3", "4")]
    ahead = check_compat(spec("1a 2a 3b 4a 5b 6a"), applied, [])
    assert ahead.compatible and ahead.pending == ("5", "6") and not ahead.reason
    behind = check_compat(spec("1a 2a 3b"), applied, [spec("1a 2a 3b 4a")])
    assert behind.compatible and behind.pending == () and behind.unknown_versions == ("4",)
    # a hotfix numbered below the applied 4: its start would stop (exit 3)
    hotfix = check_compat(spec("1a 2a 3b 3.1a"), applied, [spec("1a 2a 3b 4a")])
    assert not hotfix.compatible and hotfix.pending == ("3.1",)
    assert "3.1" in hotfix.reason and "--out-of-order" in hotfix.reason
