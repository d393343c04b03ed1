"""dbroll safety commands (registered on the main group by pipeline.cli).

`dbroll snapshot` (and `snapshot diff A B`) describe and compare schemas; `dbroll verify`
rehearses every migration's undo on a throwaway database. Module-level imports are click
only: the shared options come from pipeline.cli when register() runs, and the database,
Docker and snapshot modules are imported inside the commands, so `dbroll --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

DSN_PREFIXES = ("mysql://", "mariadb://", "mysql+pymysql://")
DOCKER_IMAGE = "mariadb:10.11"


def register(cli: click.Group) -> None:
    """Add this module's commands to the dbroll group."""
    from pipeline.cli import db_options, handle_errors, json_option, migrations_option

    @click.group(invoke_without_command=True)
    @db_options
    @click.option(
        "--out",
        "out",
        metavar="FILE",
        type=click.Path(dir_okay=False, writable=True),
        help="Write the snapshot (JSON) to FILE instead of printing it.",
    )
    @json_option
    @click.pass_context
    @handle_errors
    def snapshot(ctx, dsn, dsn_secret, out, as_json):
        """Describe the database's schema as JSON (reads only).

        \b
        Tables (columns in order, indexes, foreign keys, checks, options, partitioning),
        views, sequences, procedures, functions, triggers and events, from
        information_schema. Left out, so equal schemas compare equal: AUTO_INCREMENT
        counters, row counts and statistics, DEFINER clauses, creation times and the
        database name itself; dbroll's own tables (dbroll_history, dbroll_lock) too.

        \b
        Examples:
          dbroll snapshot --dsn mysql://app:pw@db/shop --out before.json
          dbroll snapshot diff before.json mysql://app:pw@db/shop
        """
        if ctx.invoked_subcommand is not None:
            return
        from pipeline.cli import build_spec, emit_json

        spec = build_spec(dsn, dsn_secret)
        snap = _take(spec)
        if not out:
            click.echo(_dump(snap), nl=False)
            return
        _write(out, snap)
        summary = {
            "database": spec.describe(),
            "out": out,
            "counts": {
                k: len(v) for k, v in snap.items() if isinstance(v, dict) and k != "database"
            },
        }
        if as_json:
            emit_json(summary)
        else:
            counts = ", ".join(f"{n} {k}" for k, n in summary["counts"].items() if n)
            click.echo(f"snapshot of {spec.describe()} ({counts or 'empty'}) written to {out}")

    @snapshot.command("diff")
    @click.argument("a", metavar="A")
    @click.argument("b", metavar="B")
    @json_option
    @handle_errors
    def snapshot_diff(a, b, as_json):
        """Compare two schemas: snapshot files (from `dbroll snapshot --out`, or - for
        stdin) or live databases (mysql://... DSNs).

        \b
        Prints one line per difference, from A to B:
          + table audit_log
          - index idx_x on orders
          table orders: column total: type decimal(10,2) -> decimal(12,2)

        Exit 0 when the schemas are equal, 1 when they differ, 2 when A or B cannot be read.
        """
        import sys

        from pipeline.cli import emit_json
        from pipeline.snapshot_diff import diff, render_diff

        (label_a, snap_a), (label_b, snap_b) = _load(a, "A"), _load(b, "B")
        differences = diff(snap_a, snap_b)
        if as_json:
            emit_json(
                {
                    "a": label_a,
                    "b": label_b,
                    "equal": not differences,
                    "differences": [d.to_dict() for d in differences],
                }
            )
        else:
            click.echo(_redact(render_diff(differences, before=label_a, after=label_b)))
        if differences:
            sys.exit(1)

    @click.command()
    @migrations_option
    @click.option(
        "--dsn",
        metavar="URL",
        help="A scratch database (mysql://...; not read from DBROLL_DSN, so a production "
        "DSN in the environment is never used by accident). Refused unless it is empty.",
    )
    @click.option(
        "--docker",
        is_flag=True,
        help=f"Start a throwaway MariaDB ({DOCKER_IMAGE}) with testcontainers; needs a "
        "Docker engine (CodeBuild: privileged mode).",
    )
    @click.option(
        "--docker-image",
        default=DOCKER_IMAGE,
        show_default=True,
        metavar="IMAGE",
        help="The MariaDB image for --docker (match production's version).",
    )
    @click.option(
        "--i-know-this-is-scratch",
        "scratch",
        is_flag=True,
        help="Run on a --dsn database that has tables: its pending migrations are rehearsed "
        "and undone again at the end.",
    )
    @click.option(
        "--allow-missing-undo",
        is_flag=True,
        help="Report migrations without an undo script as 'no undo' but exit 0.",
    )
    @json_option
    @handle_errors
    def verify(migrations_dir, dsn, docker, docker_image, scratch, allow_missing_undo, as_json):
        """Rehearse every migration's undo on a throwaway database.

        \b
        For each migration, in version order: snapshot the schema (S0), apply it (S1),
        run its undo (the schema must equal S0 again), apply it again (must equal S1).
        Prints a table (version, forward, undo restores, re-apply, seconds), with
        progress on stderr. The database is left as it was found: an empty one is
        emptied again, a --docker one is thrown away.

        \b
        Exit 0 when every undo restores the schema; 1 naming the first version whose undo
        does not (with the schema differences), whose script fails, or that has no undo
        script (unless --allow-missing-undo); 2 on bad flags or no Docker engine; 3 when
        the --dsn database is not empty.

        \b
        Examples:
          dbroll verify --migrations migrations --docker
          dbroll verify --migrations migrations --dsn mysql://root:pw@127.0.0.1/scratch
        """
        from pipeline.errors import ConfigError
        from pipeline.migrations.formats import load_migration_set

        if bool(dsn) == bool(docker):
            raise ConfigError(
                "give exactly one of --dsn URL (an empty scratch database) and --docker",
                hint="dbroll verify --migrations DIR --docker   (needs a Docker engine)",
            )
        mset = load_migration_set(migrations_dir)
        if docker:
            with _docker_database(docker_image) as spec:
                result = _rehearse(spec, mset, allow_missing_undo, refuse_non_empty=False)
        else:
            from pipeline.db.connect import parse_dsn

            spec = parse_dsn(dsn)
            result = _rehearse(spec, mset, allow_missing_undo, refuse_non_empty=not scratch)
        _render_verify(result, mset, as_json)

    cli.add_command(snapshot)
    cli.add_command(verify)


# ---------------------------------------------------------------------------- snapshot


def _take(spec: Any) -> dict:
    from pipeline.db.snapshot import take_snapshot

    return take_snapshot(spec)


def _dump(snap: dict) -> str:
    import json

    return json.dumps(snap, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _write(path: str, snap: dict) -> None:
    from pathlib import Path

    from pipeline.errors import ConfigError

    try:
        Path(path).write_text(_dump(snap), encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from None


def _redact(text: str) -> str:
    from pipeline.log import redact

    return redact(text)


def _load(ref: str, side: str) -> tuple[str, dict]:
    """A snapshot from a file, stdin (-) or a live database (DSN); with a printable label.
    Whatever cannot be read is a ConfigError (exit 2) naming `side` (A or B)."""
    import json
    import sys

    from pipeline.db.connect import mask_dsn
    from pipeline.errors import ConfigError, DatabaseError
    from pipeline.snapshot_diff import SnapshotFormatError, check_snapshot

    if ref.startswith(DSN_PREFIXES):
        from pipeline.db.connect import parse_dsn

        spec = parse_dsn(ref)
        try:
            return spec.describe(), _take(spec)
        except (DatabaseError, ConfigError) as e:  # no server, wrong password, no such db
            raise ConfigError(f"cannot read {side}: {e.message}", hint=e.hint) from None
    label = "stdin" if ref == "-" else ref
    try:
        text = sys.stdin.read() if ref == "-" else open(ref, encoding="utf-8").read()  # noqa: SIM115
    except OSError as e:
        # not a file: perhaps a DSN with a typo, password and all
        raise ConfigError(
            f"cannot read {side} ({_redact(mask_dsn(ref))}): {e.strerror or e}",
            hint="give a snapshot file (dbroll snapshot --out FILE) or a mysql:// DSN",
        ) from None
    try:
        data = json.loads(text)
        check_snapshot(data, label)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{label} is not JSON: {e}") from None
    except SnapshotFormatError as e:
        raise ConfigError(str(e), hint="take one with: dbroll snapshot --out FILE") from None
    return label, data


# ---------------------------------------------------------------------------- verify


def _docker_database(image: str) -> Any:
    """A context manager yielding the spec of an empty database in a fresh MariaDB container."""
    import contextlib
    import secrets
    import time

    from pipeline.errors import ConfigError

    hint = (
        "start Docker (or point DOCKER_HOST at an engine; in CodeBuild, enable privileged "
        "mode), or pass --dsn mysql://... of an empty scratch database instead of --docker"
    )
    try:
        import docker
    except ImportError:
        raise ConfigError(
            "--docker needs the Python packages testcontainers and docker",
            hint="pip install 'testcontainers>=4.8', or " + hint.split(", or ", 1)[1],
        ) from None
    try:
        docker.from_env().ping()
    except Exception as e:  # noqa: BLE001 - any failure means "no engine answers"
        reason = " ".join(str(e).split())[:200]
        raise ConfigError(f"--docker: no Docker engine answers ({reason})", hint=hint) from None
    try:
        from testcontainers.community.mysql import MySqlContainer
    except ImportError:
        try:
            from testcontainers.mysql import MySqlContainer
        except ImportError:
            raise ConfigError(
                "--docker needs the Python package testcontainers",
                hint="pip install 'testcontainers>=4.8', or pass --dsn of an empty scratch "
                "database",
            ) from None

    @contextlib.contextmanager
    def run() -> Any:
        from pipeline.db.connect import ConnectionSpec, connect
        from pipeline.errors import ConfigError, DatabaseError
        from pipeline.log import register_secret

        password = secrets.token_hex(12)
        register_secret(password)
        click.echo(f"starting a throwaway MariaDB ({image}) with Docker", err=True)
        container = MySqlContainer(image, username="root", password=password, dbname="scratch")
        try:
            container.start()
        except Exception as e:  # noqa: BLE001 - pulls, ports, engine errors
            raise ConfigError(
                f"--docker: cannot start {image}: {' '.join(str(e).split())[:300]}", hint=hint
            ) from None
        try:
            spec = ConnectionSpec(
                host=container.get_container_host_ip(),
                port=int(container.get_exposed_port(3306)),
                user="root",
                password=password,
                database="scratch",
            )
            deadline = time.monotonic() + 60
            while True:  # the log line can come a moment before the port answers
                try:
                    connect(spec).close()
                    break
                except (DatabaseError, ConfigError):  # ConfigError: "scratch" not made yet
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            yield spec
        finally:
            with contextlib.suppress(Exception):
                container.stop()

    return run()


def _rehearse(spec: Any, mset: Any, allow_missing_undo: bool, *, refuse_non_empty: bool) -> Any:
    from pipeline.cli import event_context
    from pipeline.db.connect import connect
    from pipeline.db.runner import RunnerOptions
    from pipeline.db.snapshot import list_objects, rehearse
    from pipeline.errors import BlockedError

    if refuse_non_empty:
        conn = connect(spec)
        try:
            objects = list_objects(conn)
        finally:
            conn.close()
        if objects:
            shown = ", ".join(objects[:8]) + (
                f" and {len(objects) - 8} more" if len(objects) > 8 else ""
            )
            raise BlockedError(
                f"database {spec.describe()} is not empty ({shown}): verify applies and undoes "
                "migrations, so it runs only on a scratch database",
                hint="create an empty database for it (CREATE DATABASE scratch), use --docker, "
                "or pass --i-know-this-is-scratch if this one may be changed",
            )

    def progress(check: Any) -> None:
        click.echo(
            f"verify {check.version}"
            + (f" ({check.description})" if check.description else "")
            + f": forward {check.forward}, undo {check.undo}, re-apply {check.reapply}"
            f" ({check.seconds:.2f}s)",
            err=True,
        )

    return rehearse(
        spec,
        mset,
        options=RunnerOptions(context=event_context(spec)),
        allow_missing_undo=allow_missing_undo,
        progress=progress,
    )


def _render_verify(result: Any, mset: Any, as_json: bool) -> None:
    from pipeline.cli import emit_json, table
    from pipeline.errors import DbrollError
    from pipeline.snapshot_diff import render_diff

    if as_json:
        data = result.to_dict()
        data["migrations_dir"] = str(mset.root)
        emit_json(data)
    else:
        if result.checks:
            undo_label = {"restores": "yes", "differs": "NO"}
            rows = [
                (
                    c.version,
                    c.description[:40],
                    c.forward,
                    undo_label.get(c.undo, c.undo),
                    c.reapply,
                    f"{c.seconds:.2f}" if c.forward != "not run" else "-",
                )
                for c in result.checks
            ]
            click.echo(
                table(
                    ("version", "description", "forward", "undo restores", "re-apply", "seconds"),
                    rows,
                )
            )
        else:
            click.echo(f"no pending migrations in {mset.root}: nothing to verify")
        failed = next((c for c in result.checks if c.differences), None)
        if failed is not None:
            what = (
                "after its undo the schema differs from before it was applied"
                if failed.undo == "differs"
                else "applied again after its undo, the schema differs from the first time"
            )
            click.echo(f"\nversion {failed.version} ({failed.description}): {what}:")
            for line in render_diff(failed.differences).splitlines():
                click.echo(_redact(f"  {line}"))
        if mset.repeatables:
            click.echo(
                f"note: {len(mset.repeatables)} repeatable migration(s) not rehearsed "
                "(they have no undo)"
            )
        for w in result.warnings:
            click.echo(f"warning: {w}")
        click.echo(f"cleanup: {result.cleanup}")
    if result.failure is not None:
        error = DbrollError(
            f"verify failed at {result.failure}",
            hint="fix the undo script so it reverses exactly what the forward script does "
            "(compare with `dbroll snapshot diff`)",
        )
        raise error
    if result.missing_undo and not result.allow_missing_undo:
        raise DbrollError(
            "no undo script for version(s) " + ", ".join(result.missing_undo),
            hint="write the undo scripts (U<version>__<desc>.sql, .down.sql or a "
            "-- migrate:down section), or pass --allow-missing-undo",
        )
    if not as_json:
        n = sum(1 for c in result.checks if c.undo == "restores")
        click.echo(
            f"verified {len(result.checks)} migration(s): {n} undo(s) restore the schema"
            + (f"; {len(result.missing_undo)} without undo" if result.missing_undo else "")
        )
