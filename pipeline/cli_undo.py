"""dbroll undo-generation and roll-forward commands (registered on the main group by pipeline.cli).

`dbroll undo-gen` proposes undo scripts for migrations that have none, where the inverse
is exact (pipeline.undo_gen); `dbroll roll-forward` writes a rollback plan's undo steps as
the next forward migration (pipeline.rollforward). Module-level imports are click only:
the shared options come from pipeline.cli when register() runs, everything else is
imported inside the commands, so `dbroll --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import click


def _write_new(path: Any, text: str) -> None:
    """Create a file; never over an existing one."""
    from pipeline.errors import ConfigError

    try:
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise ConfigError(f"{path} exists: never overwritten") from None
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from None


def _load_ref(ref: str, bucket: str | None, prefix: str) -> tuple[Any, Any]:
    """(manifest, image) for a manifest dir or file, a migration folder (its manifest is
    built in memory) or an ECR image (with --bucket)."""
    from pathlib import Path

    from pipeline.cli import manifest_source

    path = Path(ref)
    if path.is_dir() and not (path / "manifest.json").is_file():
        from pipeline.manifest import build_manifest
        from pipeline.migrations.formats import load_migration_set
        from pipeline.plan import ImageRef

        manifest = build_manifest(load_migration_set(path))
        return manifest, ImageRef(repository=f"folder:{path}", manifest_sha256=manifest.sha256)
    return manifest_source(bucket, prefix).load(ref)


def register(cli: click.Group) -> None:
    """Add this module's commands to the dbroll group."""
    from pipeline.cli import (
        aws_options,
        emit_json,
        handle_errors,
        json_option,
        migrations_option,
        parse_version,
    )

    @cli.command("undo-gen")
    @migrations_option
    @click.option(
        "--version",
        "versions",
        multiple=True,
        metavar="V",
        help="Only these versions (repeatable), with or without an undo script. "
        "Default: every migration without one.",
    )
    @click.option(
        "--write",
        is_flag=True,
        help="Write each exact proposal as the folder's undo file (Flyway U<v>__<desc>.sql, "
        "golang-migrate <v>_<name>.down.sql); never over an existing file. dbmate keeps "
        "the undo inside the migration file: printed, not written.",
    )
    @json_option
    @handle_errors
    def undo_gen(migrations_dir, versions, write, as_json):
        """Propose undo scripts where the inverse of a migration is exact.

        \b
        Exact: CREATE TABLE / INDEX / VIEW / PROCEDURE / FUNCTION / TRIGGER / EVENT,
        ADD COLUMN / INDEX / named FOREIGN KEY or CHECK, renames. Not: DROP, MODIFY /
        CHANGE, SET DEFAULT, CREATE OR REPLACE, INSERT / UPDATE / DELETE, TRUNCATE.
        Every proposal is marked GENERATED and starts with a comment saying so: review it.
        Exit 3 when a requested migration has no exact inverse (the reasons name the lines).

        \b
        Examples:
          dbroll undo-gen --migrations migrations
          dbroll undo-gen --migrations migrations --version 12 --write
        """
        from pathlib import Path

        from pipeline.errors import BlockedError, ConfigError
        from pipeline.migrations.formats import load_migration_set
        from pipeline.undo_gen import generate_for_set, undo_file_name

        mset = load_migration_set(migrations_dir)
        wanted = [parse_version(v, "--version") for v in versions] or None
        for v in wanted or ():
            if mset.get(v) is None:
                raise ConfigError(
                    f"--version {v}: {migrations_dir} has no such migration",
                    hint="`dbroll status` or `dbroll lint` lists the versions",
                )
        results = []
        for m, gen in generate_for_set(mset, wanted):
            entry: dict[str, Any] = {
                "version": str(m.version),
                "description": m.description,
                "path": m.up.path,
                "undo_exists": m.undo.path if m.undo else None,
                **gen.to_dict(),
                "written": None,
                "not_written": None,
            }
            if write and gen.exact:
                name = undo_file_name(mset.format, m)
                if name is None:
                    entry["not_written"] = (
                        f"dbmate keeps the undo in the '-- migrate:down' section of {m.up.path}:"
                        " paste it there"
                    )
                elif m.undo is not None or (Path(migrations_dir) / name).exists():
                    existing = m.undo.path if m.undo else name
                    entry["not_written"] = f"{existing} exists: never overwritten"
                else:
                    target = Path(migrations_dir) / name
                    _write_new(target, gen.sql or "")
                    entry["written"] = str(target)
            results.append(entry)
        blocked = [e for e in results if not e["exact"]]
        if as_json:
            emit_json({"format": mset.format, "migrations": results, "blocked": len(blocked)})
        elif not results:
            click.echo("every migration has an undo script: nothing to generate")
        else:
            for e in results:
                head = f"version {e['version']} ({e['description']}), {e['path']}"
                if e["exact"]:
                    click.echo(f"== {head}: GENERATED undo, review before use")
                    click.echo(e["sql"], nl=False)
                else:
                    click.echo(f"== {head}: no exact inverse, no undo generated")
                    for r in e["reasons"]:
                        click.echo(f"  {r}")
                if e["undo_exists"] and not e["written"]:
                    click.echo(f"  (the folder has an undo script: {e['undo_exists']})")
                if e["written"]:
                    click.echo(f"  wrote {e['written']}")
                elif e["not_written"]:
                    click.echo(f"  not written: {e['not_written']}")
                click.echo("")
            click.echo(
                f"{len(results)} migration(s): {len(results) - len(blocked)} generated, "
                f"{len(blocked)} without an exact inverse"
            )
        if blocked:
            raise BlockedError(
                f"{len(blocked)} migration(s) have no exact inverse: "
                + ", ".join(e["version"] for e in blocked),
                hint="write their undo scripts by hand, or take the change back with a new "
                "forward migration (`dbroll roll-forward`)",
            )

    @cli.command("roll-forward")
    @click.option(
        "--bundle",
        "bundle_ref",
        metavar="FILE|s3://...",
        help="A rollback bundle (dbroll plan --strategy undo --out ...) whose undo steps to "
        "write as a forward migration.",
    )
    @click.option(
        "--from",
        "from_ref",
        metavar="REF",
        help="Instead of --bundle: the deployed image (a manifest dir, a migration folder, "
        "or an ECR ref with --bucket). Default: the --migrations folder.",
    )
    @click.option(
        "--to",
        "to_ref",
        metavar="REF",
        help="Instead of --bundle: the image whose schema to go back to (same kinds of REF).",
    )
    @migrations_option
    @click.option("--reason", metavar="TEXT", help="Why: written into the migration's header.")
    @click.option(
        "--out-dir",
        "out_dir",
        metavar="DIR",
        help="Where to write the new files (default: the --migrations folder).",
    )
    @aws_options
    @json_option
    @handle_errors
    def roll_forward_cmd(
        bundle_ref, from_ref, to_ref, migrations_dir, reason, out_dir, bucket, prefix, as_json
    ):
        """Write a rollback's undo steps as the next forward migration of the folder.

        \b
        The new migration (V<next>__rollforward_of_<versions>.sql for Flyway, a dbmate file
        with both sections, or golang-migrate .up.sql/.down.sql) runs the plan's undo
        scripts newest first, under a header naming the reverted versions, both images and
        the reason. Its own undo re-applies the reverted versions' forward scripts, when the
        folder has all of them. Repeatables (R__) are not copied. Existing files are never
        overwritten. Then deploy it like any other migration (`dbroll migrate`).

        \b
        Examples:
          dbroll plan --from shop:v42 --to shop:v41 --strategy undo --out rollback.tgz
          dbroll roll-forward --bundle rollback.tgz --migrations migrations --reason "INC-7"
          dbroll roll-forward --migrations migrations --to build/v41-manifest
        """
        from pathlib import Path

        from pipeline.errors import BlockedError, ConfigError
        from pipeline.migrations.formats import load_migration_set
        from pipeline.rollforward import plan_roll_forward

        if bundle_ref and (from_ref or to_ref):
            raise ConfigError("give either --bundle FILE, or --to REF (and --from REF), not both")
        if not bundle_ref and not to_ref:
            raise ConfigError(
                "say which rollback to write: --bundle FILE, or --to REF (and --from REF)",
                hint="make a bundle with `dbroll plan --strategy undo --out bundle.tgz`",
            )
        mset = load_migration_set(migrations_dir)
        if bundle_ref:
            from pipeline.cli import read_bundle_ref

            b = read_bundle_ref(bundle_ref, bucket, prefix)
            plan_dict, files = b.plan, b.files
        else:
            from pipeline.plan import make_plan, plan_files

            deployed, deployed_ref = _load_ref(from_ref or migrations_dir, bucket, prefix)
            target, target_ref = _load_ref(to_ref, bucket, prefix)
            plan = make_plan(
                deployed, target, strategy="undo", source=deployed_ref, target_ref=target_ref
            )
            if plan.blocked:
                raise BlockedError(
                    "the rollback plan is blocked: "
                    + "; ".join(f"[{b.code}] {b.message}" for b in plan.blockers),
                    hint=plan.blockers[0].hint,
                )
            plan_dict, files = plan.to_dict(), plan_files(plan, deployed, target)
        rf = plan_roll_forward(plan_dict, files, mset, reason)
        out = Path(out_dir or migrations_dir)
        if not out.is_dir():
            raise ConfigError(f"--out-dir {out}: not a directory")
        for f in rf.files:
            if (out / f.name).exists():
                raise ConfigError(f"{out / f.name} exists: never overwritten")
        written = []
        for f in rf.files:
            _write_new(out / f.name, f.text)
            written.append(str(out / f.name))
        if as_json:
            emit_json({**rf.to_dict(), "written": written})
            return
        click.echo(
            f"roll-forward {rf.version} undoes version(s) {', '.join(rf.reverted)} (newest first)"
        )
        for path in written:
            click.echo(f"wrote {path}")
        if not rf.undo_included:
            click.echo("no undo written for the roll-forward (see the notes)")
        for n in rf.notes:
            click.echo(f"note: {n}")
        click.echo("next: review it, commit it and deploy it like any other migration")
