"""The `dbroll` command line: parse, build adapters, call the library, render, exit code.

Heavy modules (PyMySQL, boto3) are imported inside commands so `dbroll --help` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any

import click

from pipeline import __version__
from pipeline.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    ConfigError,
    DbrollError,
    Terminated,
)

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 failed, 2 usage or configuration, 3 blocked (needs a decision), "
    "4 busy (another runner holds the lock), 130/143 stopped by Ctrl-C/SIGTERM."
)


class Ctx:
    """Options shared by every command, resolved lazily."""

    def __init__(self, log_format: str, verbose: bool) -> None:
        self.log_format = log_format
        self.verbose = verbose


def _configure_logging(fmt: str, verbose: bool) -> None:
    from pipeline import log

    log.configure(fmt, level="debug" if verbose else "info")


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="dbroll")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    envvar="DBROLL_LOG_FORMAT",
    show_default=True,
    help="Logs on stderr: console on a TTY, JSON lines otherwise (CodeBuild).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def cli(ctx: click.Context, log_format: str, verbose: bool) -> None:
    """dbroll: deploy and roll back a database-backed app, schema included.

    \b
    Migrations (Flyway V/U/R files, dbmate or golang-migrate folders) are applied and
    undone on MariaDB with an append-only history table (dbroll_history), one runner at a
    time, statement-exact progress and resume after a crash.

    \b
    Typical container entrypoint:   dbroll migrate --migrations /app/migrations \\
                                      --resume-interrupted
    See where a database stands:    dbroll status --dsn mysql://user:pass@host/db
    Take it back to version 12:     dbroll undo --target 12
    """
    _configure_logging(log_format, verbose)
    ctx.obj = Ctx(log_format, verbose)


# ------------------------------------------------------------------ shared options


def db_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--dsn-secret",
        envvar="DBROLL_DSN_SECRET",
        metavar="SECRET_ID",
        help="Read an RDS-style JSON secret (host, port, username, password, dbname) from "
        "AWS Secrets Manager instead of --dsn. [env DBROLL_DSN_SECRET]",
    )(f)
    f = click.option(
        "--dsn",
        envvar="DBROLL_DSN",
        metavar="URL",
        help="mysql://user:pass@host:3306/db (or mariadb://). TLS: "
        "?ssl=verify_identity&ssl_ca=PATH (checked), ?ssl=required (not checked). RDS IAM "
        "authentication, no password: mysql://user@ENDPOINT:3306/db?iam=true. More options "
        "in the README (Connecting). [env DBROLL_DSN]",
    )(f)
    return f


def migrations_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--migrations",
        "migrations_dir",
        envvar="DBROLL_MIGRATIONS",
        default="migrations",
        show_default=True,
        metavar="DIR",
        help="Folder of migration files (Flyway, dbmate or golang-migrate). "
        "[env DBROLL_MIGRATIONS]",
    )(f)


def safety_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """What protects data a destructive undo removes (apply-bundle, rollback)."""
    f = click.option(
        "--strict",
        is_flag=True,
        help="Exit 1 when, after the undo, the schema differs from the snapshot "
        "stored when the target image was deployed (default: a warning).",
    )(f)
    return data_options(f)


def data_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--backup, --accept-data-loss, --rds-snapshot (undo, resume, apply-bundle, rollback)."""
    for decorator in reversed(
        [
            click.option(
                "--backup",
                "backup_uri",
                metavar="s3://BUCKET/PREFIX",
                envvar="DBROLL_BACKUP",
                help="Before the first undo statement, dump what the undo destroys (whole "
                "tables, or primary key + column) here, gzip JSON lines with a manifest.",
            ),
            click.option(
                "--accept-data-loss",
                is_flag=True,
                help="Run a destructive undo without a backup (the data is gone for good).",
            ),
            click.option(
                "--rds-snapshot",
                "rds_instance",
                metavar="DB_INSTANCE_ID",
                help="Also take an RDS snapshot of this instance, and wait for it, before "
                "destructive steps.",
            ),
        ]
    ):
        f = decorator(f)
    return f


def build_guard(
    spec: Any,
    run_id: str,
    backup_uri: str | None,
    accept_data_loss: bool,
    rds_instance: str | None,
    dry_run: bool,
) -> Any:
    """The data guard of undo and apply-bundle from their data_options; `run_id` names the
    backup unless DBROLL_RUN_ID or CODEBUILD_BUILD_ID does."""
    from pipeline.db.connect import connect
    from pipeline.safety import data_guard

    return data_guard(
        connect=lambda: connect(spec),
        run_id=_env_run_id() or run_id,
        backup_uri=backup_uri,
        accept_data_loss=accept_data_loss,
        s3=boto_client("s3") if backup_uri else None,
        rds=boto_client("rds") if rds_instance else None,
        rds_instance=rds_instance,
        dry_run=dry_run,
        progress=lambda line: click.echo(line, err=True),
    )


def _finite(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A number of seconds: FloatRange lets nan (no comparison fails for it) and inf through."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds", ctx, param)
    return value


def runner_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option(
            "--lock-timeout",
            type=click.FloatRange(0),
            callback=_finite,
            default=60.0,
            show_default=True,
            envvar="DBROLL_LOCK_TIMEOUT",
            help="Seconds to wait while another dbroll runner works on this database; then exit 4.",
        ),
        click.option(
            "--lock-wait-timeout",
            type=click.IntRange(0),
            default=5,
            show_default=True,
            envvar="DBROLL_LOCK_WAIT_TIMEOUT",
            help="Seconds one DDL attempt may wait for a metadata lock (0: never "
            "queue). Short, so the app's queries never pile up behind a migration.",
        ),
        click.option(
            "--lock-retries",
            type=click.IntRange(0),
            default=10,
            show_default=True,
            envvar="DBROLL_LOCK_RETRIES",
            help="Retries, with backoff, of a statement that timed out on a lock.",
        ),
        click.option(
            "--take-over-gone-runner",
            is_flag=True,
            envvar="DBROLL_TAKE_OVER_GONE_RUNNER",
            help="When the lock's holder ran in an ECS task AWS says is STOPPED (or a "
            "CodeBuild build that ended) and its sessions run no statement, end them and "
            "take the lock, as `dbroll unlock` would, instead of waiting hours for the server "
            "to notice. Needs ecs:DescribeTasks (codebuild:BatchGetBuilds) on it, and the "
            "same database user. [env DBROLL_TAKE_OVER_GONE_RUNNER=1]",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _log_callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and not ctx.resilient_parsing:
        root = ctx.find_root()
        obj = root.obj or Ctx("auto", False)
        if param.name == "log_format":
            obj.log_format = value
        else:
            obj.verbose = obj.verbose or bool(value)
        root.obj = obj
        _configure_logging(obj.log_format, obj.verbose)
    return value


def log_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--log-format and -v are accepted after the command name too."""
    f = click.option(
        "-v",
        "--verbose",
        is_flag=True,
        default=None,
        expose_value=False,
        callback=_log_callback,
        help="Debug logging.",
    )(f)
    return click.option(
        "--log-format",
        type=click.Choice(["auto", "console", "json"]),
        default=None,
        expose_value=False,
        callback=_log_callback,
        help="Logs on stderr: console on a TTY, JSON lines otherwise.",
    )(f)


def aws_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--prefix",
        envvar="DBROLL_PREFIX",
        default="dbroll",
        show_default=True,
        help="Key prefix inside the bucket. [env DBROLL_PREFIX]",
    )(f)
    return click.option(
        "--bucket",
        envvar="DBROLL_BUCKET",
        metavar="BUCKET",
        help="S3 bucket for manifests, bundles and audit records. [env DBROLL_BUCKET]",
    )(f)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(f)
    return log_options(f)


def error_dict(e: DbrollError) -> dict[str, Any]:
    """A DbrollError for --json: what went wrong, what to do, the exit code, what it names
    (version, statement, path, AWS resource) and what ran before it (`ran`: the run's result
    so far, for migrate, undo and resume)."""
    out: dict[str, Any] = {
        "type": type(e).__name__,
        "message": e.message,
        "hint": e.hint,
        "exit_code": e.exit_code,
    }
    for name in ("version", "statement", "path", "resource"):
        if getattr(e, name, None) is not None:
            out[name] = getattr(e, name)
    partial = getattr(e, "partial", None)
    if partial is not None:
        out["ran"] = partial.to_dict()
    return out


def handle_errors(f: Callable[..., Any]) -> Callable[..., Any]:
    """Render DbrollError as `Error: ...` with secrets removed, and exit with its code."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _JSON_OUT
        _JSON_OUT = False
        try:
            return f(*args, **kwargs)
        except DbrollError as e:
            from pipeline.log import redact

            if kwargs.get("as_json") and not _JSON_OUT:
                # stdout stays JSON for the pipeline reading it: the error, and what ran
                # (unless the command printed its result before it failed: compat, lint...)
                emit_json({"error": error_dict(e)})
            click.echo(f"Error: {redact(str(e))}", err=True)
            sys.exit(e.exit_code)
        except Exception as e:
            # the last net for a server error no adapter turned into a DbrollError (PyMySQL's
            # classes are matched by module: importing it here would slow every --help)
            if not type(e).__module__.startswith("pymysql"):
                raise
            from pipeline.log import redact

            click.echo(
                f"Error: database error: {redact(' '.join(map(str, e.args)))}\n  hint: the "
                "server refused or dropped a query; `dbroll status` shows what was recorded",
                err=True,
            )
            sys.exit(EXIT_FAILED)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (see main)
            term = isinstance(e, Terminated)
            click.echo(
                f"Error: stopped by {'SIGTERM' if term else 'SIGINT'}; what was running was "
                "interrupted\n  hint: a database change stops at a recorded point: "
                "`dbroll status` shows it and `dbroll resume` continues it",
                err=True,
            )
            sys.exit(EXIT_TERMINATED if term else EXIT_INTERRUPTED)

    return wrapper


# ------------------------------------------------------------------ adapters


def build_spec(dsn: str | None, dsn_secret: str | None) -> Any:
    from pipeline.db.connect import parse_dsn, spec_from_secret

    if dsn and dsn_secret:
        raise ConfigError("give either --dsn or --dsn-secret, not both")
    if dsn_secret:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            value = boto_client("secretsmanager").get_secret_value(SecretId=dsn_secret)
        except (ClientError, BotoCoreError) as e:
            raise ConfigError(
                f"cannot read secret {dsn_secret} from Secrets Manager: {e}",
                hint="check the secret id, the region (AWS_DEFAULT_REGION or AWS_REGION) and "
                "secretsmanager:GetSecretValue permission",
            ) from None
        return spec_from_secret(value.get("SecretString") or "", dsn_secret)
    return parse_dsn(dsn or "")


def _env_run_id() -> str | None:
    """The run this process belongs to: DBROLL_RUN_ID (a deploy's one-off task), else the
    CodeBuild build; history rows and backups are named by it."""
    return os.environ.get("DBROLL_RUN_ID") or os.environ.get("CODEBUILD_BUILD_ID") or None


def event_context(spec: Any) -> Any:
    from pipeline.aws.where import runner_arn
    from pipeline.db.history import EventContext

    return EventContext(
        installed_by=spec.user,
        image=os.environ.get("DBROLL_IMAGE") or None,
        run_id=_env_run_id(),
        host=socket.gethostname(),
        runner_arn=runner_arn(),
    )


def gone_runner_check() -> Callable[[str], Any]:
    """Whether the ECS task or CodeBuild build a lock row names still runs, asked of AWS
    (for `unlock` and --take-over-gone-runner)."""
    from pipeline.aws.where import runner_status

    return lambda arn: runner_status(arn, boto_client)


def build_runner(
    dsn: str | None,
    dsn_secret: str | None,
    migrations_dir: str,
    *,
    mset: Any = None,
    **runner_kw: Any,
) -> Any:
    from pipeline.db.runner import Runner, RunnerOptions
    from pipeline.migrations.formats import load_migration_set

    spec = build_spec(dsn, dsn_secret)
    mset = mset or load_migration_set(migrations_dir)
    opts = RunnerOptions(context=event_context(spec), **runner_kw)
    return Runner(spec, mset, opts)


def parse_version(value: str, flag: str) -> Any:
    from pipeline.migrations.model import Version

    try:
        return Version.parse(value)
    except ValueError:
        raise ConfigError(
            f"{flag} {value!r} is not a version",
            hint="versions are digits separated by '.' or '_', e.g. 12 or 1.10",
        ) from None


def write_file(path: str, data: str | bytes, flag: str) -> None:
    """Write an output file a flag names; an unwritable path is a ConfigError naming both."""
    from pathlib import Path

    try:
        if isinstance(data, bytes):
            Path(path).write_bytes(data)
        else:
            Path(path).write_text(data, encoding="utf-8")
    except OSError as e:
        raise ConfigError(
            f"{flag} {path}: cannot write it ({e.strerror or e})",
            hint=f"{flag} names a file (not a folder) in a folder that exists and dbroll may "
            "write; the database was not touched",
        ) from None


# ------------------------------------------------------------------ rendering


_JSON_OUT = False  # this command printed its JSON (handle_errors adds no second document)


def emit_json(data: Any) -> None:
    global _JSON_OUT
    from pipeline.log import redact_json

    click.echo(redact_json(data, indent=2, sort_keys=True, default=str))
    _JSON_OUT = True


def render_run(result: Any, as_json: bool) -> None:
    if as_json:
        emit_json(result.to_dict())
        return
    rows = [
        (
            s.step.label,
            s.step.kind,
            s.step.description[:40],
            s.mode,
            f"{s.statements_done}/{s.statements}",
            s.status,
            f"{s.duration_ms / 1000:.3f}s" if not result.dry_run else "-",
        )
        for s in result.steps
    ]
    if rows:
        click.echo(
            table(("version", "kind", "description", "mode", "statements", "status", "time"), rows)
        )
    for w in result.warnings:
        click.echo(f"warning: {w}")
    if result.extra.get("data_at_risk"):
        from pipeline.risk import Risk, needs_protection

        risks = [Risk.from_dict(d) for d in result.extra["data_at_risk"]]
        held = needs_protection(risks)
        empty = [r for r in risks if not r.at_risk]
        if held:
            click.echo("data at risk:")
            for r in held:
                click.echo(f"  {r.line()}")
        if empty:
            click.echo(
                f"destroyed, holding no data: {len(empty)} table(s) or column(s)"
                + (" (--json lists them)" if len(empty) > 5 else "")
            )
            if len(empty) <= 5:
                for r in empty:
                    click.echo(f"  {r.line()}")
    backup = result.extra.get("backup") or {}
    if backup.get("uri"):
        click.echo(f"backup: {backup['rows']} row(s) in {backup['uri']}")
    elif backup.get("would_back_up"):
        click.echo("would back up: " + ", ".join(backup["would_back_up"]))
    elif backup.get("would_lose"):
        click.echo(
            "would destroy without a backup (--accept-data-loss): "
            + ", ".join(backup["would_lose"])
        )
    snap = result.extra.get("rds_snapshot")
    if isinstance(snap, dict) and snap.get("would_snapshot"):
        click.echo(f"would take an RDS snapshot of {snap['would_snapshot']} first")
    elif snap:
        click.echo(f"RDS snapshot: {snap}")
    if result.extra.get("schema_matches"):
        click.echo(f"schema matches {result.extra['schema_matches']}'s snapshot")
    if result.extra.get("snapshot"):
        click.echo(f"schema snapshot stored: {result.extra['snapshot']}")
    suffix = f" in {result.duration_ms / 1000:.2f}s" if not result.dry_run else " (dry run)"
    click.echo(result.message + suffix)


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    from pipeline.render import render_table

    return render_table(header, rows)


# ------------------------------------------------------------------ commands


@cli.command()
@db_options
@migrations_option
@runner_options
@click.option("--target", metavar="VERSION", help="Apply up to and including this version.")
@click.option("--dry-run", is_flag=True, help="Show what would run; change nothing.")
@click.option(
    "--strict-future",
    is_flag=True,
    help="Exit 3 when the database has versions newer than every local file "
    "(default: warn and exit 0, so an older container can start).",
)
@click.option(
    "--out-of-order",
    is_flag=True,
    envvar="DBROLL_OUT_OF_ORDER",
    help="Apply pending versions older than the newest applied one (a hotfix numbered "
    "below a version a code-only rollback kept, say). [env DBROLL_OUT_OF_ORDER=1]",
)
@click.option(
    "--resume-interrupted",
    is_flag=True,
    envvar="DBROLL_RESUME_INTERRUPTED",
    help="First finish a migration that a stopped runner left running (stopped by SIGTERM, "
    "Ctrl-C or kill -9, a crash, or a lost connection), from the statement where it "
    "stopped, as `dbroll resume` does; then apply the rest. For containers that migrate at "
    "start, so that a task stopped mid-migration does not block every task after it. A "
    "migration that failed on an error is never resumed this way, nor an undo, nor one "
    "stopped 3 times in a row at the same statement. [env DBROLL_RESUME_INTERRUPTED=1]",
)
@click.option(
    "--manifest",
    "manifest_ref",
    metavar="REF",
    help="Take the migrations from an image's manifest (ECR ref, with --bucket) instead of "
    "--migrations: how a one-off task of the deployed image applies a newer image's migrations.",
)
@aws_options
@json_option
@handle_errors
def migrate(
    dsn,
    dsn_secret,
    migrations_dir,
    lock_timeout,
    lock_wait_timeout,
    lock_retries,
    take_over_gone_runner,
    target,
    dry_run,
    strict_future,
    out_of_order,
    resume_interrupted,
    manifest_ref,
    bucket,
    prefix,
    as_json,
):
    """Apply pending migrations (then changed repeatables), one runner at a time.

    Safe as a container entrypoint: concurrent starts wait for the lock and then find
    nothing to do; a schema that is ahead of this image (after a code-only rollback) is
    accepted with a warning. A migration that a stopped runner left half done blocks it
    (exit 3) until `dbroll resume`; with --resume-interrupted it is finished first.
    """
    mset = image = source = None
    if manifest_ref:
        source = manifest_source(bucket, prefix)
        manifest, image = source.load(manifest_ref)
        mset = manifest.to_migration_set(manifest_ref)
    runner = build_runner(
        dsn,
        dsn_secret,
        migrations_dir,
        mset=mset,
        lock_timeout=lock_timeout,
        lock_wait_timeout=lock_wait_timeout,
        lock_retries=lock_retries,
        take_over=gone_runner_check() if take_over_gone_runner else None,
        strict_future=strict_future,
        out_of_order=out_of_order,
        resume_interrupted=resume_interrupted,
    )
    result = runner.migrate(
        parse_version(target, "--target") if target is not None else None, dry_run=dry_run
    )
    if image is not None and source.store is not None and not dry_run and not target:
        # the schema this image's migrations produced: what an undo back to it must restore
        from pipeline.db.snapshot import take_snapshot

        uri = source.store.put_snapshot(image.repository, image.digest, take_snapshot(runner.spec))
        if uri:
            result.extra["snapshot"] = uri
    render_run(result, as_json)


@cli.command()
@db_options
@migrations_option
@runner_options
@click.option(
    "--target",
    metavar="VERSION",
    required=True,
    help="Undo every applied version newer than this one (0: undo everything).",
)
@data_options
@click.option(
    "--dry-run", is_flag=True, help="Show what would run and the data at risk; change nothing."
)
@json_option
@handle_errors
def undo(
    dsn,
    dsn_secret,
    migrations_dir,
    lock_timeout,
    lock_wait_timeout,
    lock_retries,
    take_over_gone_runner,
    target,
    backup_uri,
    accept_data_loss,
    rds_instance,
    dry_run,
    as_json,
):
    """Run undo scripts newest first, down to (not including) --target.

    An undo that would destroy data (drops a table or column that holds rows, narrows a
    column, deletes rows) is refused (exit 3, nothing run) unless --backup or
    --accept-data-loss says what to do; the data at risk is counted and shown either way.

    \b
    Examples:
      dbroll undo --target 12 --dry-run        # what would run, and the data at risk
      dbroll undo --target 12 --backup s3://my-bucket/dbroll   # then: dbroll backup list
      dbroll undo --target 0 --accept-data-loss   # a scratch database: everything goes
    """
    version = parse_version(target, "--target")
    runner = build_runner(
        dsn,
        dsn_secret,
        migrations_dir,
        lock_timeout=lock_timeout,
        lock_wait_timeout=lock_wait_timeout,
        lock_retries=lock_retries,
        take_over=gone_runner_check() if take_over_gone_runner else None,
    )
    guard = build_guard(
        runner.spec,
        f"undo-{version}-{int(time.time())}",
        backup_uri,
        accept_data_loss,
        rds_instance,
        dry_run,
    )
    render_run(runner.undo(version, dry_run=dry_run, guard=guard), as_json)


@cli.command()
@db_options
@migrations_option
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="REF",
    help="Images (ECR refs or local manifests) to check against the schema; status "
    "then names the oldest one that can run on it. Repeatable.",
)
@aws_options
@json_option
@handle_errors
def status(dsn, dsn_secret, migrations_dir, images, bucket, prefix, as_json):
    """Where the database stands: current version, applied, pending, blocked.

    Reads only; creates nothing. With --json: current_version, applied, pending, future,
    gaps, drift, blocked (null or {version, kind, statements_done, error, in_progress: who
    runs it now or null, ...}), locks (who holds dbroll's locks and what their sessions
    do, as `dbroll unlock` shows them; [] when free), connection ({tls, verified, auth,
    socket}: how the database was reached), and with --image: compat (per image:
    compatible, reason, pending: the versions its start would apply) and oldest_compatible.
    """
    runner = build_runner(dsn, dsn_secret, migrations_dir)
    state = runner.status()
    data = state.to_dict()
    data["database"] = runner.spec.describe()
    data["connection"] = runner.connection
    if data["blocked"] is not None:
        data["blocked"]["in_progress"] = runner.in_progress
    data["locks"] = runner.holders
    if images:
        from pipeline.plan import check_compat

        source = manifest_source(bucket, prefix)
        loaded = [(ref, *source.load(ref)) for ref in images]
        known = [m for _, m, _ in loaded]
        data["compat"] = []
        for ref, m, image in sorted(loaded, key=lambda x: x[1].versions):
            c = check_compat(m, state.applied, known)
            data["compat"].append(
                {
                    "ref": ref,
                    "image": image.label,
                    "compatible": c.compatible,
                    "reason": c.reason,
                    "pending": list(c.pending),
                }
            )
        data["oldest_compatible"] = next(
            (c["ref"] for c in data["compat"] if c["compatible"]), None
        )
    if as_json:
        emit_json(data)
        return
    from pipeline.db.connect import describe_facts

    click.echo(f"database:  {data['database']}")
    click.echo(f"connected: {describe_facts(data['connection'])}")
    click.echo(f"current:   {data['current_version'] or '(none)'}")
    click.echo(f"applied:   {len(data['applied'])}")
    click.echo(
        f"pending:   {len(data['pending'])}"
        + (f" ({_versions(data['pending'])})" if data["pending"] else "")
    )
    if data["future"]:
        click.echo(f"future:    {', '.join(data['future'])} (newer than every local file)")
    if data["gaps"]:
        click.echo(f"gaps:      {', '.join(data['gaps'])} (applied, no local file)")
    for d in data["drift"]:
        click.echo(f"drift:     {d['path']} changed since it was applied")
    b = data["blocked"]
    if b:
        subject = f"version {b['version']}" if b["version"] else b["script"]
        total = f"/{b['statements_total']}" if b["statements_total"] is not None else ""
    if b and b["in_progress"]:
        click.echo(
            f"RUNNING:   {subject} {b['kind']}, {b['statements_done']}{total} statements done, "
            f"by {b['in_progress']}"
        )
        click.echo("           a runner is at work: nothing to do but wait (`dbroll status`)")
    elif b:
        click.echo(
            f"BLOCKED:   {subject} {b['kind']} {b['status']} after "
            f"{b['statements_done']}{total} statements"
        )
        if b["error"]:
            click.echo(f"           {b['error']}")
        click.echo("           next: `dbroll resume`, or `dbroll repair --as applied|reverted`")
    else:
        click.echo("blocked:   no")
    from pipeline.db.runner import holder_line

    for h in data["locks"]:
        click.echo(f"lock:      {holder_line(h)}")
    if not data["locks"]:
        click.echo("lock:      free")
    if images:
        for c in data["compat"]:
            click.echo(
                f"image:     {c['ref']}: "
                + (
                    f"NO ({c['reason']})"
                    if not c["compatible"]
                    else f"can run once its start applies {_versions(c['pending'])}"
                    if c["pending"]
                    else "can run on this schema"
                )
            )
        click.echo(f"oldest compatible image: {data['oldest_compatible'] or '(none)'}")


@cli.command()
@db_options
@click.option(
    "--force",
    is_flag=True,
    help="Also end a session that is running a statement (its runner is likely at work; "
    "MariaDB rolls that statement back).",
)
@click.option(
    "--yes",
    is_flag=True,
    help="Do not ask for confirmation. A run whose stdin is not a terminal does not ask either.",
)
@click.option("--dry-run", is_flag=True, help="Show who holds the lock; end nothing.")
@json_option
@handle_errors
def unlock(dsn, dsn_secret, force, yes, dry_run, as_json):
    """Release the lock a gone runner still holds (its host or task lost).

    A runner whose host vanished without closing its connections keeps dbroll's lock on the
    server until the server notices, which can take hours; meanwhile every `migrate` waits
    --lock-timeout and exits 4 (busy). unlock shows who holds the lock (connection, host,
    pid, run) and what its sessions do, then ends them (KILL CONNECTION) once you confirm.
    A session running a statement means its runner is likely at work: refused (exit 3)
    unless --force. Idle sessions are no proof either (a runner backing data up to S3 or
    waiting for an RDS snapshot is idle for minutes). A runner in an ECS task or a
    CodeBuild build records it with the lock, and unlock asks AWS (ecs:DescribeTasks,
    codebuild:BatchGetBuilds) whether it still runs: one that does is refused (exit 3)
    unless --force; a STOPPED task or ended build proves its sessions are leftovers. Where
    AWS cannot answer (no credentials, another account), it says so and goes on as for a
    runner elsewhere: check that its host is gone first (ended anyway, such a runner stops
    before its first undo statement).
    What a gone runner left half done stays recorded: `dbroll status` shows it, `dbroll
    resume` (or `migrate --resume-interrupted`) goes on from there.

    \b
    Examples:
      dbroll unlock --dry-run      # who holds it, and what its sessions do
      dbroll unlock                # end them (asks first on a terminal)
    """
    from pipeline.db.runner import Runner, RunnerOptions, holder_line

    spec = build_spec(dsn, dsn_secret)
    runner = Runner(spec, None, RunnerOptions(context=event_context(spec)))

    def show(holders: list[dict[str, Any]], err: bool) -> None:
        for h in holders:
            click.echo(holder_line(h), err=err)
            if "runner_status" in h:
                click.echo(f"  {h['runner_status']['text']}", err=err)

    def confirm(holders: list[dict[str, Any]]) -> bool:
        if not as_json:
            show(holders, err=True)
        if yes or not sys.stdin.isatty():
            return True
        return click.confirm("End these sessions?", default=False, err=True)

    data = runner.unlock(
        force=force,
        dry_run=dry_run,
        confirm=confirm,
        check_runner=gone_runner_check(),
    )
    if as_json:
        emit_json(data)
        return
    if dry_run:
        show(data["holders"], err=False)
    click.echo(data["message"])


def _versions(versions: list[str], shown: int = 10) -> str:
    """`5, 6, 7`, or the first `shown` and an ellipsis."""
    return ", ".join(versions[:shown]) + (" …" if len(versions) > shown else "")


@cli.command()
@db_options
@migrations_option
@json_option
@handle_errors
def validate(dsn, dsn_secret, migrations_dir, as_json):
    """Check every applied script's checksum and that every file splits into statements
    (quotes, comments and DELIMITER lines close; the server checks the SQL itself when it
    runs); report all problems.

    Exit 3 when an applied file changed, an applied version has no file, or a run is
    blocked; 2 when a file cannot be read or split, or the folder holds no migration beside
    applied versions (it stops there); 0 otherwise.
    """
    from pipeline.errors import BlockedError

    runner = build_runner(dsn, dsn_secret, migrations_dir)
    state = runner.validate()
    data = state.to_dict()
    problems = []
    for d in state.drift:
        problems.append(
            f"{d.path}: version {d.version} was applied with sha256 "
            f"{d.applied_checksum}, the file now has {d.file_checksum}"
        )
    for v in state.gaps:
        problems.append(f"version {v} is applied but no file in {migrations_dir} has it")
    if state.blocked is not None:
        problems.append(f"{state.blocked.subject} is {state.blocked.status}")
    data["problems"] = problems
    if as_json:
        emit_json(data)
    else:
        for p in problems:
            click.echo(f"problem: {p}")
        click.echo(
            f"{len(problems)} problem(s); {len(state.applied)} applied, "
            f"{len(state.pending)} pending"
        )
    if problems:
        raise BlockedError(
            f"validation found {len(problems)} problem(s)",
            hint="`dbroll repair --checksums` accepts changed files on purpose",
        )


@cli.command()
@db_options
@migrations_option
@runner_options
@click.option(
    "--from-statement",
    type=click.IntRange(1),
    metavar="N",
    help="Continue at statement N instead of the first one not recorded as done "
    "(e.g. N+1 when you ran the failed statement by hand).",
)
@data_options
@click.option(
    "--dry-run", is_flag=True, help="Show what would run and the data at risk; change nothing."
)
@json_option
@handle_errors
def resume(
    dsn,
    dsn_secret,
    migrations_dir,
    lock_timeout,
    lock_wait_timeout,
    lock_retries,
    take_over_gone_runner,
    from_statement,
    backup_uri,
    accept_data_loss,
    rds_instance,
    dry_run,
    as_json,
):
    """Finish a failed or interrupted migration from where it stopped.

    The blocked history row records how many statements completed; resume runs the rest
    (a DML-only migration, which ran in one transaction, starts over). Fix the cause
    first: `dbroll status` shows the error.

    The rest of an undo is guarded like `dbroll undo`: rows written since the undo started
    (the app kept running) into what its remaining statements destroy are counted, and the
    resume is refused (exit 3, nothing run) unless --backup or --accept-data-loss says what
    to do.
    """
    runner = build_runner(
        dsn,
        dsn_secret,
        migrations_dir,
        lock_timeout=lock_timeout,
        lock_wait_timeout=lock_wait_timeout,
        lock_retries=lock_retries,
        take_over=gone_runner_check() if take_over_gone_runner else None,
    )
    guard = build_guard(
        runner.spec,
        f"resume-{int(time.time())}",
        backup_uri,
        accept_data_loss,
        rds_instance,
        dry_run,
    )
    render_run(runner.resume(from_statement=from_statement, dry_run=dry_run, guard=guard), as_json)


@cli.command()
@db_options
@migrations_option
@click.option(
    "--as",
    "mark",
    type=click.Choice(["applied", "reverted"]),
    help="The state you left a failed or interrupted migration in by hand.",
)
@click.option(
    "--checksums",
    is_flag=True,
    help="Accept applied files whose checksum changed (records new checksums).",
)
@json_option
@handle_errors
def repair(dsn, dsn_secret, migrations_dir, mark, checksums, as_json):
    """Resolve a blocked migration by hand, recorded as a repair row (history stays intact)."""
    runner = build_runner(dsn, dsn_secret, migrations_dir)
    render_run(runner.repair(mark=mark, checksums=checksums), as_json)


@cli.command()
@db_options
@migrations_option
@click.option(
    "--version",
    "version",
    required=True,
    metavar="VERSION",
    help="The version the existing schema corresponds to.",
)
@json_option
@handle_errors
def baseline(dsn, dsn_secret, migrations_dir, version, as_json):
    """Adopt an existing database: record versions up to VERSION as applied; run nothing."""
    runner = build_runner(dsn, dsn_secret, migrations_dir)
    render_run(runner.baseline(parse_version(version, "--version")), as_json)


# ------------------------------------------------------------------ AWS adapters


_AWS_CALLS: Any = None  # an AwsCallLog while a dry run records (and guards) AWS calls


def boto_client(service: str, region: str | None = None) -> Any:
    """The only place that creates AWS clients (endpoint from AWS_ENDPOINT_URL if set). The
    region: `region` (an ARN's), else botocore's (AWS_DEFAULT_REGION, a profile), else
    AWS_REGION, which Lambda, ECS and CodeBuild set and botocore does not read."""
    import boto3

    session = boto3.session.Session()
    client = session.client(
        service, region_name=region or session.region_name or os.environ.get("AWS_REGION")
    )
    if _AWS_CALLS is not None:
        _AWS_CALLS.attach(client)
    return client


@contextlib.contextmanager
def recording_aws_calls(enabled: bool, *, read_only: bool) -> Iterator[Any]:
    """While inside, every AWS client created records its calls; read_only refuses writes."""
    global _AWS_CALLS
    if not enabled:
        yield None
        return
    from pipeline.aws.calls import AwsCallLog

    _AWS_CALLS = AwsCallLog(read_only=read_only)
    try:
        yield _AWS_CALLS
    finally:
        _AWS_CALLS = None


def manifest_source(bucket: str | None, prefix: str) -> Any:
    from pipeline.refs import ManifestSource

    if not bucket:
        return ManifestSource()
    from pipeline.aws.ecr import Registry
    from pipeline.aws.store import ArtifactStore

    return ManifestSource(
        Registry(boto_client("ecr")), ArtifactStore(boto_client("s3"), bucket, prefix)
    )


def read_bundle_ref(ref: str, bucket: str | None, prefix: str) -> Any:
    """A bundle from a local file or s3:// URI, verified."""
    from pathlib import Path

    from pipeline.bundle import read_bundle

    if ref.startswith("s3://"):
        from pipeline.aws.store import ArtifactStore, parse_s3_uri

        b, _ = parse_s3_uri(ref)
        data = ArtifactStore(boto_client("s3"), bucket or b, prefix).get_uri(ref)
    else:
        path = Path(ref)
        if not path.is_file():
            raise ConfigError(
                f"bundle {ref} does not exist",
                hint="make one with `dbroll plan ... --out bundle.tgz`",
            )
        data = path.read_bytes()
    return read_bundle(data, source=ref)


# ------------------------------------------------------------------ build stage


@cli.group()
def manifest() -> None:
    """Build, publish and show image manifests (migrations with undo scripts and checksums)."""


@manifest.command("build")
@migrations_option
@click.option(
    "--out",
    "outdir",
    required=True,
    metavar="OUTDIR",
    help="Directory to write manifest.json and its sql/ files into (COPY it into the image).",
)
@click.option(
    "--app-version",
    metavar="V",
    envvar="DBROLL_APP_VERSION",
    help="The application version this build is (shown in plans).",
)
@json_option
@handle_errors
def manifest_build(migrations_dir, outdir, app_version, as_json):
    """Write OUTDIR/manifest.json and print its sha256.

    \b
    Label the image with the sha256 if you like (for people and `docker inspect`: dbroll
    finds manifests in S3 by the image digest, see `manifest publish`):
      SHA=$(dbroll manifest build --migrations migrations --out build/dbroll)
      docker build --label io.dbroll.manifest.sha256=$SHA .
    """
    from pipeline.manifest import build_manifest, write_manifest
    from pipeline.migrations.formats import load_migration_set

    m = build_manifest(load_migration_set(migrations_dir), app_version=app_version)
    try:
        path = write_manifest(m, outdir)
    except OSError as e:
        raise ConfigError(
            f"--out {outdir}: cannot write the manifest there ({e.strerror or e}"
            + (f": {e.filename}" if e.filename and str(e.filename) != str(outdir) else "")
            + ")",
            hint="--out names a folder (created if missing) that dbroll may write",
        ) from None
    if as_json:
        emit_json(
            {
                "sha256": m.sha256,
                "path": str(path),
                "migrations": len(m.migrations),
                "latest": str(m.latest) if m.latest else None,
            }
        )
    else:
        click.echo(m.sha256)


@manifest.command("publish")
@click.option(
    "--manifest",
    "manifest_dir",
    required=True,
    metavar="OUTDIR",
    help="The directory `dbroll manifest build` wrote.",
)
@click.option(
    "--image",
    "image",
    required=True,
    metavar="REF",
    help="ECR image: repo:tag, repo@sha256:..., or a full ECR URI.",
)
@aws_options
@json_option
@handle_errors
def manifest_publish(manifest_dir, image, bucket, prefix, as_json):
    """Upload a manifest to S3 under the image's digest (immutable; same one again: no-op)."""
    from pipeline.aws.ecr import Registry
    from pipeline.aws.store import ArtifactStore
    from pipeline.manifest import load_manifest

    m = load_manifest(manifest_dir)
    ref = Registry(boto_client("ecr")).resolve(image)
    store = ArtifactStore(boto_client("s3"), bucket or "", prefix)
    uri, created = store.publish_manifest(m, ref.repository, ref.digest)
    data = {"uri": uri, "created": created, "digest": ref.digest, "sha256": m.sha256}
    if as_json:
        emit_json(data)
    else:
        click.echo(f"{'published' if created else 'already published (same manifest)'}: {uri}")


@manifest.command("show")
@click.argument("ref")
@aws_options
@json_option
@handle_errors
def manifest_show(ref, bucket, prefix, as_json):
    """Show a manifest: REF is a local manifest dir/file, or an ECR image (tag or digest)."""
    m, image = manifest_source(bucket, prefix).load(ref)
    if as_json:
        emit_json({**m.to_dict(), "sha256": m.sha256, "image": image.to_dict()})
        return
    click.echo(f"image:    {image.label}")
    click.echo(f"manifest: {m.sha256}  ({m.format}, app version {m.app_version or '-'})")
    rows = [
        (str(x.version), x.description[:40], x.klass, "yes" if x.undo else "NO", len(x.findings))
        for x in m.migrations
    ]
    if rows:
        click.echo(table(("version", "description", "class", "undo", "findings"), rows))
    for r in m.repeatables:
        click.echo(f"repeatable: {r.script.source}")


@cli.command()
@migrations_option
@click.option(
    "--since", metavar="VERSION", help="Only migrations newer than VERSION (e.g. the deployed one)."
)
@json_option
@handle_errors
def lint(migrations_dir, since, as_json):
    """Classify migrations as additive, data, breaking or unknown (expand/contract).

    Exit 1 when a selected migration has a breaking or unknown finding that is not
    accepted with `-- dbroll:allow <code> <reason>` in its file.
    """
    from pipeline.migrations.formats import load_migration_set
    from pipeline.migrations.lint import lint_set

    mset = load_migration_set(migrations_dir)
    lints = lint_set(mset, parse_version(since, "--since") if since is not None else None)
    blocking = [f for x in lints for f in x.blocking]
    if as_json:
        emit_json(
            {
                "migrations": [
                    {
                        "version": str(x.version),
                        "class": x.klass,
                        "findings": [f.to_dict() for f in x.findings],
                    }
                    for x in lints
                ],
                "blocking": len(blocking),
            }
        )
    else:
        for x in lints:
            for f in x.findings:
                mark = "allowed" if f.allowed else f.klass
                click.echo(f"{f.path}:{f.line}: {f.code} [{mark}] {f.message}")
                if f.hint and not f.allowed:
                    click.echo(f"    instead: {f.hint}")
        counts = {}
        for x in lints:
            counts[x.klass] = counts.get(x.klass, 0) + 1
        click.echo(
            f"{len(lints)} migration(s): "
            + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            + f"; {len(blocking)} blocking finding(s)"
        )
    if blocking:
        from pipeline.errors import DbrollError

        raise DbrollError(
            f"{len(blocking)} breaking finding(s) not accepted",
            hint="change the migration the expand/contract way, or accept it with "
            "`-- dbroll:allow <code> <reason>`",
        )


# ------------------------------------------------------------------ plan, bundles


def _history_for(dsn: str | None, dsn_secret: str | None) -> Any:
    return _history_of(build_spec(dsn, dsn_secret) if dsn or dsn_secret else None)


def _history_of(spec: Any) -> Any:
    """The database's history (None without a database)."""
    if spec is None:
        return None
    from pipeline.db.runner import Runner

    return Runner(spec, None).history()


@cli.command()
@click.option(
    "--from", "from_ref", metavar="REF", help="The deployed image (ECR ref or local manifest)."
)
@click.option(
    "--from-service",
    metavar="CLUSTER/SERVICE",
    help="Read the deployed image from an ECS service instead of --from.",
)
@click.option("--container", metavar="NAME", help="The app container (when the task has several).")
@click.option(
    "--also-service",
    "also_services",
    multiple=True,
    metavar="NAME",
    envvar="DBROLL_ALSO_SERVICES",
    help="With --from-service: another service of the cluster that the move takes along (as "
    "`rollback --also-service`); checked now, and named in the plan for the approver. "
    "[env DBROLL_ALSO_SERVICES]",
)
@click.option(
    "--to",
    "to_ref",
    required=True,
    metavar="REF",
    help="The target image (ECR ref or local manifest).",
)
@db_options
@click.option(
    "--strategy",
    type=click.Choice(["auto", "undo", "code-only"]),
    default="auto",
    show_default=True,
    envvar="DBROLL_STRATEGY",
    help="auto: code-only when every migration to revert is additive, else undo.",
)
@click.option(
    "--force-code-only",
    is_flag=True,
    help="Allow code-only over breaking migrations (you know the old code copes).",
)
@click.option(
    "--allow-generated-undo",
    is_flag=True,
    help="A version to revert without an undo script gets the undo dbroll generates from "
    "its forward script, when every statement has an exact inverse (marked generated).",
)
@click.option("--out", "out", metavar="FILE", help="Write the rollback bundle (tar.gz) here.")
@click.option(
    "--markdown",
    "markdown",
    metavar="FILE",
    help="Write the plan as markdown (for a manual-approval page).",
)
@aws_options
@json_option
@handle_errors
def plan(
    from_ref,
    from_service,
    container,
    also_services,
    to_ref,
    dsn,
    dsn_secret,
    strategy,
    force_code_only,
    allow_generated_undo,
    out,
    markdown,
    bucket,
    prefix,
    as_json,
):
    """Plan a rollback (or forward move) between two images, and package it as a bundle.

    With --dsn the plan uses the database's live history (and refuses what it cannot
    explain); without it, the deployed manifest stands in for the history. Exit 3 when
    the plan is blocked; the reasons say what to do.
    """
    from pipeline.deploy import plan_rollback, require_unblocked
    from pipeline.plan import render_markdown, render_text

    if bool(from_ref) == bool(from_service):
        raise ConfigError("give exactly one of --from REF and --from-service CLUSTER/SERVICE")
    service = None
    if from_service:
        from pipeline.aws.ecs import Ecs

        cluster, _, svc = from_service.partition("/")
        if not svc:
            raise ConfigError(f"--from-service {from_service!r}: expected CLUSTER/SERVICE")
        service = (Ecs(boto_client("ecs")), cluster, svc, container)
    # one spec for the history and the risk measure: --dsn-secret is read once
    spec = build_spec(dsn, dsn_secret) if dsn or dsn_secret else None
    history = _history_of(spec)
    planned = plan_rollback(
        manifest_source(bucket, prefix),
        to_ref=to_ref,
        from_ref=from_ref,
        from_service=service,
        history=history,
        strategy=strategy,
        force_code_only=force_code_only,
        allow_generated_undo=allow_generated_undo,
        also=also_services,
    )
    p = planned.plan
    along = (
        f"also moves: {', '.join(planned.also)} (the same image, after the database step)"
        if planned.also
        else ""
    )
    from pipeline.risk import plan_targets, render_risk_section

    targets = plan_targets(planned.plan_dict, planned.files)
    risks = None
    if targets and spec is not None:
        from pipeline.db.connect import connect
        from pipeline.db.risk import measure

        conn = connect(spec)
        try:
            risks = measure(
                conn,
                targets,
                {str(v): r.finished_at for v, r in history.applied.items() if r.finished_at},
            )
        finally:
            conn.close()
    if markdown:
        section = render_risk_section(targets, risks, markdown=True)
        write_file(
            markdown,
            render_markdown(p)
            + (f"\n- {along}\n" if along else "")
            + (f"\n{section}\n" if section else ""),
            "--markdown",
        )
    bundle_sha = None
    if out and not p.blocked:
        from pipeline.bundle import bundle_sha256

        data = planned.bundle()
        write_file(out, data, "--out")
        bundle_sha = bundle_sha256(data)
    if as_json:
        emit_json(
            {
                **planned.plan_dict,
                "also_services": list(planned.also),
                "blocked": p.blocked,
                "bundle": out if bundle_sha else None,
                "bundle_sha256": bundle_sha,
                "data_at_risk": [r.to_dict() for r in risks]
                if risks is not None
                else [t.to_dict() for t in targets],
            }
        )
    else:
        click.echo(render_text(p))
        if along:
            click.echo(along)
        section = render_risk_section(targets, risks, markdown=False)
        if section:
            click.echo(section)
        if bundle_sha:
            click.echo(f"bundle: {out} (sha256 {bundle_sha})")
    require_unblocked(p)


@cli.group()
def bundle() -> None:
    """Verify and inspect rollback bundles."""


@bundle.command("verify")
@click.argument("ref", metavar="FILE|s3://...")
@aws_options
@json_option
@handle_errors
def bundle_verify(ref, bucket, prefix, as_json):
    """Check a bundle's structure and every checksum; exit 3 if anything is off."""
    b = read_bundle_ref(ref, bucket, prefix)
    if as_json:
        emit_json({"ok": True, "sha256": b.sha256, "files": sorted(b.files)})
    else:
        click.echo(f"ok: {ref} (sha256 {b.sha256}, {len(b.files)} script(s))")


@bundle.command("show")
@click.argument("ref", metavar="FILE|s3://...")
@aws_options
@json_option
@handle_errors
def bundle_show(ref, bucket, prefix, as_json):
    """Show the plan inside a bundle."""
    from pipeline.plan import Plan, render_text

    b = read_bundle_ref(ref, bucket, prefix)
    if as_json:
        emit_json({"sha256": b.sha256, "plan": b.plan, "files": sorted(b.files)})
    else:
        click.echo(render_text(Plan.from_dict(b.plan)))
        click.echo(f"bundle sha256 {b.sha256}")


def _schema_drift(spec, bucket, prefix, target, result) -> list[str] | None:
    """Compare the schema with the snapshot stored for the target image (after an undo)."""
    from pipeline.aws.store import ArtifactStore
    from pipeline.db.snapshot import take_snapshot
    from pipeline.snapshot_diff import diff

    stored = ArtifactStore(boto_client("s3"), bucket, prefix).get_snapshot(
        target.repository, target.digest
    )
    if stored is None:
        result.warnings.append(
            f"no stored schema snapshot for {target.label}: the result was not compared"
        )
        return None
    drift = [str(d) for d in diff(stored, take_snapshot(spec))]
    result.extra["schema_drift"] = drift
    if drift:
        result.warnings.append(
            f"the schema differs from {target.label}'s snapshot: " + "; ".join(drift[:10])
        )
    else:
        result.extra["schema_matches"] = target.label
    return drift


def _safety_args(backup_uri, accept_data_loss, rds_instance, strict) -> list[str]:
    return (
        (["--backup", backup_uri] if backup_uri else [])
        + (["--accept-data-loss"] if accept_data_loss else [])
        + (["--rds-snapshot", rds_instance] if rds_instance else [])
        + (["--strict"] if strict else [])
    )


@cli.command("apply-bundle")
@click.argument("ref", metavar="FILE|s3://...")
@db_options
@runner_options
@safety_options
@click.option("--dry-run", is_flag=True, help="Check the bundle and the database; change nothing.")
@aws_options
@json_option
@handle_errors
def apply_bundle(
    ref,
    dsn,
    dsn_secret,
    lock_timeout,
    lock_wait_timeout,
    lock_retries,
    take_over_gone_runner,
    backup_uri,
    accept_data_loss,
    rds_instance,
    strict,
    dry_run,
    bucket,
    prefix,
    as_json,
):
    """Run a rollback bundle against the database (in the one-off task).

    Verifies the bundle, takes the runner lock, checks that the live history is what the
    plan expected (else exit 3, nothing changed), then runs the undo steps with the
    engine's rules and re-applies the target's repeatables. Running it again continues a
    partly applied bundle, or says it is already done.

    An undo that would destroy data (drops a table or column that holds rows, narrows a
    column, deletes rows) is refused (exit 3, nothing run) unless --backup or
    --accept-data-loss says what to do; the data at risk is counted and shown either way.
    """
    from pipeline.db.runner import Runner, RunnerOptions
    from pipeline.plan import Plan

    b = read_bundle_ref(ref, bucket, prefix)
    try:
        the_plan = Plan.from_dict(b.plan)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"bundle {ref}: its plan is not a dbroll plan ({e})") from None
    spec = build_spec(dsn, dsn_secret)
    runner = Runner(
        spec,
        None,
        RunnerOptions(
            context=event_context(spec),
            lock_timeout=lock_timeout,
            lock_wait_timeout=lock_wait_timeout,
            lock_retries=lock_retries,
            take_over=gone_runner_check() if take_over_gone_runner else None,
        ),
    )
    guard = build_guard(spec, b.sha256[:12], backup_uri, accept_data_loss, rds_instance, dry_run)
    result = runner.apply_plan(
        the_plan, b.files, bundle_sha256=b.sha256, dry_run=dry_run, guard=guard
    )
    drift = None
    if (
        not dry_run
        and bucket
        and the_plan.strategy == "undo"  # code-only leaves the schema ahead on purpose
        and the_plan.target.repository
        and the_plan.target.digest
    ):
        drift = _schema_drift(spec, bucket, prefix, the_plan.target, result)
    render_run(result, as_json)
    if os.environ.get("DBROLL_TASK") == "1":
        from pipeline.deploy import TASK_RESULT_MARK
        from pipeline.log import redact_json

        # one machine-readable line for the orchestrator reading this task's log
        click.echo(
            f"{TASK_RESULT_MARK} "
            + redact_json({**result.extra, "message": result.message}, default=str),
            err=True,
        )
    if drift and strict:
        raise DbrollError(
            f"the schema differs from {the_plan.target.label}'s snapshot after the undo "
            f"({len(drift)} difference(s)): " + "; ".join(drift[:5]),
            hint="`dbroll snapshot diff` shows them in full; the undo scripts do not restore "
            "exactly what the target's migrations made",
        )


@cli.command()
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@db_options
@click.option(
    "--manifest",
    "schema_ref",
    metavar="REF",
    help="Judge against the schema this image's migrations produce, not a live DB.",
)
@aws_options
@json_option
@handle_errors
def compat(refs, dsn, dsn_secret, schema_ref, bucket, prefix, as_json):
    """Can each image run on the current schema? (its "minimum application version")

    Yes when every applied version the image does not know is additive, and none of its own
    unapplied versions is older than the newest applied one (a `dbroll migrate` at its start
    would stop there). Its unapplied versions are listed: its start applies them. Exit 3
    when an image is not compatible.
    """
    from pipeline.errors import BlockedError
    from pipeline.plan import check_compat

    source = manifest_source(bucket, prefix)
    images = [source.load(r) for r in refs]
    known = [m for m, _ in images]
    if schema_ref:
        schema_manifest, _ = source.load(schema_ref)
        applied = list(schema_manifest.versions)
        known.append(schema_manifest)
    else:
        history = _history_for(dsn, dsn_secret)
        if history is None:
            raise ConfigError("compat needs the schema: --dsn/--dsn-secret or --manifest REF")
        applied = list(history.applied)
    results = []
    for ref, (m, image) in zip(refs, images, strict=True):
        c = check_compat(m, applied, known)
        results.append(
            {
                "ref": ref,
                "image": image.label,
                "compatible": c.compatible,
                "unknown_versions": list(c.unknown_versions),
                "first_breaking": c.first_breaking,
                "reason": c.reason,
                "pending": list(c.pending),
            }
        )
    if as_json:
        emit_json({"results": results})
    else:
        for r in results:
            verdict = "yes" if r["compatible"] else f"NO: {r['reason']}"
            extra = (
                f" (runs on {len(r['unknown_versions'])} newer additive version(s))"
                if r["compatible"] and r["unknown_versions"]
                else ""
            ) + (
                f" (once its start applies {_versions(r['pending'])})"
                if r["compatible"] and r["pending"]
                else ""
            )
            click.echo(f"{r['ref']}: {verdict}{extra}")
    bad = [r["ref"] for r in results if not r["compatible"]]
    if bad:
        raise BlockedError(
            "not compatible with the current schema: " + ", ".join(bad),
            hint="roll back with --strategy undo, or deploy a newer image",
        )


# ------------------------------------------------------------------ deploy side


def _move_adapters(
    what,
    cluster,
    service_name,
    container,
    executor_kind,
    runner,
    dsn,
    dsn_secret,
    timeout,
    bucket,
    prefix,
    quiet,
):
    """Store, ECS adapters and the executor for a rollback or deploy (the only place they are
    built). The database task's output goes to stderr as it arrives unless `quiet`."""
    from pipeline.aws.ecs import Ecs, OneOffTasks, register_runner
    from pipeline.executor import EcsTaskExecutor, LocalTaskExecutor
    from pipeline.log import redact

    source = manifest_source(bucket, prefix)
    if source.store is None:
        raise ConfigError(f"{what} needs the artifact bucket", hint="--bucket or DBROLL_BUCKET")
    ecs_client = boto_client("ecs")
    ecs = Ecs(ecs_client)
    delay = float(os.environ.get("DBROLL_POLL_SECONDS", "6"))

    def on_line(line: str) -> None:
        click.echo(f"  | {redact(line)}", err=True)

    stream = None if quiet else on_line
    if executor_kind == "local":
        env = {}
        if dsn:
            env["DBROLL_DSN"] = dsn
        if dsn_secret:
            env["DBROLL_DSN_SECRET"] = dsn_secret
        executor = LocalTaskExecutor(
            timeout=timeout, base_env={**os.environ, **env}, on_line=stream
        )
    else:
        state = ecs.service_state(cluster, service_name)
        app = container or next((c.container for c in state.containers if c.repository), None)
        if app is None:
            raise ConfigError(
                f"ECS service {cluster}/{service_name} runs no ECR image",
                hint="name the app container with --container",
            )
        task_definition = None
        if runner != "current":
            if _AWS_CALLS is not None and _AWS_CALLS.read_only:
                task_definition = f"<{state.task_definition} with {runner} in {app}>"
            else:
                task_definition = register_runner(ecs_client, state, app, runner)
        executor = EcsTaskExecutor(
            OneOffTasks(ecs_client, boto_client("logs")),
            state,
            container=app,
            task_definition=task_definition,
            timeout=timeout,
            delay=delay,
            on_line=stream,
        )
    return source, ecs, ecs_client, executor


def move_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by rollback and deploy."""
    for decorator in reversed(
        [
            click.option("--cluster", required=True, envvar="DBROLL_CLUSTER", help="ECS cluster."),
            click.option(
                "--service",
                "service_name",
                required=True,
                envvar="DBROLL_SERVICE",
                help="ECS service.",
            ),
            click.option(
                "--container", metavar="NAME", help="The app container (when there are several)."
            ),
            click.option(
                "--also-service",
                "also_services",
                multiple=True,
                metavar="NAME",
                envvar="DBROLL_ALSO_SERVICES",
                help="Another service of the cluster on the same image (a queue worker, a "
                "scheduler): after the database step it moves to the target too, before "
                "--service. It must run what --service runs (or the target already, after an "
                "interrupted run), else nothing changes. Repeatable. [env "
                "DBROLL_ALSO_SERVICES, names separated by spaces]",
            ),
            click.option(
                "--codedeploy-group",
                metavar="APP/GROUP",
                envvar="DBROLL_CODEDEPLOY_GROUP",
                help="For a service deployed by CodeDeploy (blue/green): the application "
                "and deployment group that deploy it. The move is then a CodeDeploy "
                "deployment of the new revision (no hooks: the database step is done). "
                "Found by looking when not given. [env DBROLL_CODEDEPLOY_GROUP]",
            ),
            click.option(
                "--executor",
                "executor_kind",
                type=click.Choice(["ecs", "local"]),
                default="ecs",
                show_default=True,
                help="Where the database step runs: a one-off ECS task in the service's "
                "cluster and network, or this machine (CodeBuild in the VPC, demos).",
            ),
            click.option(
                "--runner",
                default="current",
                show_default=True,
                metavar="current|IMAGE",
                help="The image of the one-off task: the service's current task definition "
                "(its image contains dbroll), or a dedicated dbroll image (registered as "
                "family <family>-dbroll-runner).",
            ),
            click.option(
                "--dry-run",
                is_flag=True,
                help="Plan, then list every AWS call made (reads only) and every call it "
                "would make; writes are refused at the client, nothing changes.",
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(1),
                callback=_finite,
                default=900,
                show_default=True,
                help="Seconds to wait for the one-off task, and again for the service.",
            ),
            click.option("--quiet", is_flag=True, help="Do not stream the database task's output."),
        ]
    ):
        f = decorator(f)
    return f


def _run_id() -> str | None:
    return os.environ.get("CODEBUILD_BUILD_ID") or os.environ.get("DBROLL_RUN_ID")


def _bluegreen(group: str | None) -> Any:
    """CodeDeploy moves for a blue/green service; its client is made only when one is."""
    from pipeline.aws.bluegreen import BlueGreen

    return BlueGreen(lambda: boto_client("codedeploy"), group)


def _render_move(result: Any, calls: Any, as_json: bool, dry_run: bool) -> None:
    from pipeline.plan import render_text

    if as_json:
        data = result.to_dict()
        if calls is not None:
            data["aws_calls_made"] = calls.calls
        emit_json(data)
        return
    if dry_run:
        click.echo(render_text(result.plan))
        if calls is not None:
            click.echo("\nAWS calls made (read-only):")
            click.echo("\n".join(f"  {c}" for c in calls.calls) or "  (none)")
        if result.would:
            click.echo("AWS calls it would make, in order:")
            click.echo("\n".join(f"  {i}. {c}" for i, c in enumerate(result.would, 1)))
    click.echo(result.outcome)
    rows = [
        ("strategy", result.plan.strategy),
        (
            "database step",
            f"{result.task_arn} (exit {result.task_exit})" if result.task_arn else None,
        ),
        ("bundle", result.bundle_uri),
        (
            "data at risk",
            ", ".join(
                f"{r['what']} ({r['rows']})"
                for r in result.task_result.get("data_at_risk", [])
                if r.get("rows")
            )
            or None,
        ),
        (
            "backup",
            f"{result.task_result['backup']['rows']} row(s) in {result.task_result['backup']['uri']}"
            if (result.task_result.get("backup") or {}).get("uri")
            else None,
        ),
        ("task definition", result.task_definition),
        (
            "also moved",
            ", ".join(f"{name} ({arn})" for name, arn in result.also.items()) or None,
        ),
        ("durations", ", ".join(f"{k} {v:g}" for k, v in result.durations.items()) or None),
        ("audit record", result.audit_uri),
    ]
    for label, value in rows:
        if value and not dry_run:
            click.echo(f"{label}: {value}")


@cli.command()
@move_options
@click.option("--to", "to_ref", metavar="REF", help="The image to go back to.")
@click.option(
    "--bundle",
    "bundle_ref",
    metavar="s3://...",
    help="Run this approved bundle instead of planning again (the rollback pipeline's "
    "Execute stage); refused when the service no longer runs the bundle's source image.",
)
@click.option(
    "--strategy",
    type=click.Choice(["auto", "undo", "code-only"]),
    default="auto",
    show_default=True,
    envvar="DBROLL_STRATEGY",
    help="auto: code-only when every migration to revert is additive, else undo.",
)
@click.option(
    "--force-code-only",
    is_flag=True,
    help="Allow code-only over breaking migrations (you know the old code copes).",
)
@click.option(
    "--allow-generated-undo",
    is_flag=True,
    help="A version to revert without an undo script gets the undo dbroll generates from "
    "its forward script, when every statement has an exact inverse (marked generated).",
)
@db_options
@safety_options
@click.option(
    "--yes",
    is_flag=True,
    help="Do not ask for confirmation. A run whose stdin is not a terminal (CI, a script, "
    "`< /dev/null`) does not ask either.",
)
@aws_options
@json_option
@handle_errors
def rollback(
    cluster,
    service_name,
    container,
    also_services,
    codedeploy_group,
    executor_kind,
    runner,
    dry_run,
    timeout,
    quiet,
    to_ref,
    bundle_ref,
    strategy,
    force_code_only,
    allow_generated_undo,
    dsn,
    dsn_secret,
    backup_uri,
    accept_data_loss,
    rds_instance,
    strict,
    yes,
    bucket,
    prefix,
    as_json,
):
    """Roll an ECS service back to an older image, schema first.

    \b
    1. plan from the image the service runs to --to (live history with --dsn and
       --executor local), or take an approved --bundle;
    2. upload the bundle (s3://BUCKET/PREFIX/bundles/<sha256>.tgz);
    3. run `dbroll apply-bundle` in a one-off task of the current task definition (never
       the older image), streaming its output;
    4. only if that succeeded, point the service at the target image and wait for the
       deployment (a CodeDeploy deployment for a blue/green service); 5. write an audit
       record.
    A re-run after a failure continues where it stopped. --to the image the service runs
    (after CodeDeploy put traffic back on it) reverts only what is applied beyond it.

    \b
    Examples:
      dbroll rollback --cluster prod --service shop --to shop:v41 --bucket my-artifacts
      dbroll rollback --cluster prod --service shop --to shop:v41 --dry-run
      dbroll rollback --cluster prod --service shop --bundle s3://my-artifacts/dbroll/bundles/<sha>.tgz --yes
    """
    from pipeline.deploy import rollback as do_rollback
    from pipeline.plan import render_text

    if bool(to_ref) == bool(bundle_ref):
        raise ConfigError("give exactly one of --to REF and --bundle s3://...")
    with recording_aws_calls(dry_run, read_only=True) as calls:
        source, ecs, ecs_client, executor = _move_adapters(
            "rollback",
            cluster,
            service_name,
            container,
            executor_kind,
            runner,
            dsn,
            dsn_secret,
            timeout,
            bucket,
            prefix,
            quiet or as_json,
        )
        history = _history_for(dsn, dsn_secret) if executor_kind == "local" else None
        bundle = (bundle_ref, read_bundle_ref(bundle_ref, bucket, prefix)) if bundle_ref else None

        def confirm(plan):
            click.echo(render_text(plan), err=True)
            if yes or not sys.stdin.isatty():
                return True
            return click.confirm("Proceed?", default=False, err=True)

        result = do_rollback(
            source=source,
            ecs=ecs,
            ecs_client=ecs_client,
            executor=executor,
            cluster=cluster,
            service=service_name,
            to_ref=to_ref,
            bundle=bundle,
            apply_args=_safety_args(backup_uri, accept_data_loss, rds_instance, strict),
            container=container,
            strategy=strategy,
            force_code_only=force_code_only,
            allow_generated_undo=allow_generated_undo,
            history=history,
            confirm=confirm,
            dry_run=dry_run,
            run_id=_run_id(),
            timeout=timeout,
            delay=float(os.environ.get("DBROLL_POLL_SECONDS", "15")),
            sts=None if dry_run else boto_client("sts"),
            also=also_services,
            bluegreen=_bluegreen(codedeploy_group),
        )
    _render_move(result, calls, as_json, dry_run)


@cli.command()
@move_options
@click.option("--image", "image_ref", required=True, metavar="REF", help="The image to deploy.")
@click.option(
    "--pipeline-name",
    envvar="DBROLL_PIPELINE_NAME",
    help="With --pipeline-execution-id: the CodePipeline this deploy runs in.",
)
@click.option(
    "--pipeline-execution-id",
    envvar="DBROLL_PIPELINE_EXECUTION_ID",
    help="When that execution is a CodePipeline stage ROLLBACK (it re-runs an older "
    "input), take the undo path (`dbroll rollback --to IMAGE`) instead of migrating forward.",
)
@click.option(
    "--resume-interrupted",
    is_flag=True,
    envvar="DBROLL_RESUME_INTERRUPTED",
    help="The one-off task first finishes a migration that a stopped runner left running "
    "(`migrate --resume-interrupted`, passed as DBROLL_RESUME_INTERRUPTED=1 in the task's "
    "environment, which an image's older dbroll ignores). Without it, such a migration "
    "blocks the deploy (exit 3) and the service stays. [env DBROLL_RESUME_INTERRUPTED=1]",
)
@click.option(
    "--out-of-order",
    is_flag=True,
    envvar="DBROLL_OUT_OF_ORDER",
    help="Apply the image's new versions even where one is older than the newest applied "
    "(a hotfix numbered below a version that a code-only rollback kept): `migrate "
    "--out-of-order` in the task, passed as DBROLL_OUT_OF_ORDER=1 in its environment. "
    "Without it, the plan blocks (exit 3) before any task runs. [env DBROLL_OUT_OF_ORDER=1]",
)
@db_options
@aws_options
@json_option
@handle_errors
def deploy(
    cluster,
    service_name,
    container,
    also_services,
    codedeploy_group,
    executor_kind,
    runner,
    dry_run,
    timeout,
    quiet,
    image_ref,
    pipeline_name,
    pipeline_execution_id,
    resume_interrupted,
    out_of_order,
    dsn,
    dsn_secret,
    bucket,
    prefix,
    as_json,
):
    """Deploy a newer image, schema first: its pending migrations run in a one-off task of
    the current task definition (`dbroll migrate --manifest`), then the service moves.

    \b
    Examples:
      dbroll deploy --cluster prod --service shop --image shop@sha256:... --bucket my-artifacts
      dbroll deploy ... --pipeline-name shop-deploy --pipeline-execution-id $EXEC_ID
      dbroll deploy ... --resume-interrupted   # after a task was stopped mid-migration
    """
    from pipeline.deploy import deploy as do_deploy
    from pipeline.deploy import rollback as do_rollback

    if bool(pipeline_name) != bool(pipeline_execution_id):
        raise ConfigError("give both --pipeline-name and --pipeline-execution-id, or neither")
    with recording_aws_calls(dry_run, read_only=True) as calls:
        execution_type = None
        if pipeline_execution_id:
            from pipeline.aws.codepipeline import execution_type as get_execution_type

            execution_type = get_execution_type(
                boto_client("codepipeline"), pipeline_name, pipeline_execution_id
            )
        source, ecs, ecs_client, executor = _move_adapters(
            "deploy",
            cluster,
            service_name,
            container,
            executor_kind,
            runner,
            dsn,
            dsn_secret,
            timeout,
            bucket,
            prefix,
            quiet or as_json,
        )
        common = dict(
            source=source,
            ecs=ecs,
            ecs_client=ecs_client,
            executor=executor,
            cluster=cluster,
            service=service_name,
            container=container,
            dry_run=dry_run,
            run_id=_run_id(),
            timeout=timeout,
            delay=float(os.environ.get("DBROLL_POLL_SECONDS", "15")),
            sts=None if dry_run else boto_client("sts"),
            also=also_services,
            bluegreen=_bluegreen(codedeploy_group),
        )
        if execution_type == "ROLLBACK":
            click.echo(
                f"pipeline {pipeline_name} execution {pipeline_execution_id} is a stage "
                f"rollback: taking the undo path to {image_ref}",
                err=True,
            )
            result = do_rollback(to_ref=image_ref, **common)
        else:
            result = do_deploy(
                image_ref=image_ref,
                resume_interrupted=resume_interrupted,
                out_of_order=out_of_order,
                **common,
            )
    _render_move(result, calls, as_json, dry_run)


@cli.command()
@click.option(
    "--keep", is_flag=True, help="Leave MariaDB and moto running afterwards (until Ctrl-C)."
)
@click.option(
    "--dsn",
    metavar="URL",
    help="Use this (empty) database instead of starting a throwaway MariaDB.",
)
@click.option(
    "--aws-endpoint",
    metavar="URL",
    help="Use this moto server instead of starting one in-process.",
)
@json_option
@handle_errors
def demo(keep, dsn, aws_endpoint, as_json):
    """The whole story in a minute, no AWS account needed.

    \b
    Starts a throwaway MariaDB and an in-process moto (S3, ECR, ECS), then, with the
    shop example (examples/shop/migrations):
      1. builds and publishes a manifest for the images of releases v1, v2, v3;
      2. deploys v1 -> v2 -> v3 on an ECS service (`dbroll deploy`), the app writing
         rows at each step;
      3. rolls back to v2: breaking changes, so the undo scripts run (data at risk shown
         and backed up first), then the service moves;
      4. rolls back to v1: everything to revert is additive, so code only;
      5. prints a summary and stops everything it started.
    """
    import time

    from pipeline.demo import run_demo

    tty = sys.stdout.isatty() and not as_json

    def wait() -> None:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo("stopping", err=True)

    result = run_demo(
        echo=(lambda line: click.echo(line, err=True)) if as_json else click.echo,
        tty=tty,
        dsn=dsn,
        endpoint=aws_endpoint,
        keep=keep,
        wait=wait,
    )
    if as_json:
        emit_json(
            {
                "steps": [s.__dict__ for s in result.steps],
                "endpoint": result.endpoint,
            }
        )


def _register_modules() -> None:
    # Each module keeps its heavy imports inside its commands, so --help stays fast.
    from pipeline import cli_backup, cli_pipeline, cli_safety, cli_undo

    for module in (cli_safety, cli_backup, cli_pipeline, cli_undo):
        module.register(cli)


def _note_envvars(command: click.Command) -> None:
    """End the help of every option read from the environment with `[env NAME]`, as the
    hand-written ones do, so that --help names every variable that changes a command."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _note_envvars(sub)
    for p in command.params:
        if (
            isinstance(p, click.Option)
            and isinstance(p.envvar, str)
            and f"[env {p.envvar}" not in (p.help or "")
        ):
            p.help = f"{p.help or ''} [env {p.envvar}]".strip()


_register_modules()
_note_envvars(cli)


_stopping = False


def _stop(signum: int, frame: Any) -> None:
    """SIGINT and SIGTERM: the first raises (KeyboardInterrupt, Terminated) so the run stops
    the way Ctrl-C always did: the server's statements interrupted, the record written.
    A second one is ignored, with a note, so that it cannot cut that short: Ctrl-C in a
    terminal and the SIGTERM a parent dbroll passes on arrive moments apart."""
    global _stopping
    if _stopping:
        os.write(
            2,
            b"dbroll: already stopping (recording where the run stopped); "
            b"kill -9 ends it at once\n",
        )
        return
    _stopping = True
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def main() -> None:
    # without this, SIGTERM (ECS StopTask, docker stop, a supervisor) would end the
    # process at once and leave its packet of statements running on the server
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    cli(prog_name="dbroll")
