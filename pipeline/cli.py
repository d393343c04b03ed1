"""The `dbroll` command line: parse, build adapters, call the library, render, exit code.

Heavy modules (PyMySQL, boto3) are imported inside commands so `dbroll --help` stays fast.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from pipeline import __version__
from pipeline.errors import ConfigError, DbrollError

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 failed, 2 usage or configuration, 3 blocked (needs a decision), "
    "4 busy (another runner holds the lock)."
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
    Typical container entrypoint:   dbroll migrate --migrations /app/migrations
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
        help="mysql://user:pass@host:3306/db (or mariadb://); TLS with ?ssl_ca=PATH or "
        "?ssl=required. [env DBROLL_DSN]",
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


def runner_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--lock-timeout", type=click.FloatRange(0), default=60.0, show_default=True,
                     envvar="DBROLL_LOCK_TIMEOUT",
                     help="Seconds to wait while another dbroll runner works on this database; "
                     "then exit 4."),
        click.option("--lock-wait-timeout", type=click.IntRange(0), default=5, show_default=True,
                     envvar="DBROLL_LOCK_WAIT_TIMEOUT",
                     help="Seconds one DDL attempt may wait for a metadata lock (0: never "
                     "queue). Short, so the app's queries never pile up behind a migration."),
        click.option("--lock-retries", type=click.IntRange(0), default=10, show_default=True,
                     envvar="DBROLL_LOCK_RETRIES",
                     help="Retries, with backoff, of a statement that timed out on a lock."),
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
    f = click.option("-v", "--verbose", is_flag=True, default=None, expose_value=False,
                     callback=_log_callback, help="Debug logging.")(f)
    return click.option("--log-format", type=click.Choice(["auto", "console", "json"]),
                        default=None, expose_value=False, callback=_log_callback,
                        help="Logs on stderr: console on a TTY, JSON lines otherwise.")(f)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(f)
    return log_options(f)


def handle_errors(f: Callable[..., Any]) -> Callable[..., Any]:
    """Render DbrollError as `Error: ...` with secrets removed, and exit with its code."""

    @wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except DbrollError as e:
            from pipeline.log import redact

            click.echo(f"Error: {redact(str(e))}", err=True)
            sys.exit(e.exit_code)

    return wrapper


# ------------------------------------------------------------------ adapters


def build_spec(dsn: str | None, dsn_secret: str | None) -> Any:
    from pipeline.db.connect import parse_dsn, spec_from_secret

    if dsn and dsn_secret:
        raise ConfigError("give either --dsn or --dsn-secret, not both")
    if dsn_secret:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            value = boto3.client("secretsmanager").get_secret_value(SecretId=dsn_secret)
        except (ClientError, BotoCoreError) as e:
            raise ConfigError(
                f"cannot read secret {dsn_secret} from Secrets Manager: {e}",
                hint="check the secret id, the region (AWS_REGION) and secretsmanager:"
                "GetSecretValue permission",
            ) from None
        return spec_from_secret(value.get("SecretString") or "", dsn_secret)
    return parse_dsn(dsn or "")


def event_context(spec: Any) -> Any:
    from pipeline.db.history import EventContext

    return EventContext(
        installed_by=spec.user,
        image=os.environ.get("DBROLL_IMAGE") or None,
        run_id=os.environ.get("DBROLL_RUN_ID") or os.environ.get("CODEBUILD_BUILD_ID") or None,
        host=socket.gethostname(),
    )


def build_runner(dsn: str | None, dsn_secret: str | None, migrations_dir: str,
                 **runner_kw: Any) -> Any:
    from pipeline.db.runner import Runner, RunnerOptions
    from pipeline.migrations.formats import load_migration_set

    spec = build_spec(dsn, dsn_secret)
    mset = load_migration_set(migrations_dir)
    opts = RunnerOptions(context=event_context(spec), **runner_kw)
    return Runner(spec, mset, opts)


def parse_version(value: str, flag: str) -> Any:
    from pipeline.migrations.model import Version

    try:
        return Version.parse(value)
    except ValueError:
        raise ConfigError(f"{flag} {value!r} is not a version",
                          hint="versions are digits separated by '.' or '_', e.g. 12 or 1.10") from None


# ------------------------------------------------------------------ rendering


def emit_json(data: Any) -> None:
    from pipeline.log import redact

    click.echo(redact(json.dumps(data, indent=2, sort_keys=True, default=str)))


def render_run(result: Any, as_json: bool) -> None:
    if as_json:
        emit_json(result.to_dict())
        return
    rows = [
        (s.step.label, s.step.kind, s.step.description[:40], s.mode,
         f"{s.statements_done}/{s.statements}", s.status,
         f"{s.duration_ms / 1000:.3f}s" if not result.dry_run else "-")
        for s in result.steps
    ]
    if rows:
        click.echo(table(("version", "kind", "description", "mode", "statements", "status",
                          "time"), rows))
    for w in result.warnings:
        click.echo(f"warning: {w}")
    suffix = f" in {result.duration_ms / 1000:.2f}s" if not result.dry_run else " (dry run)"
    click.echo(result.message + suffix)


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ------------------------------------------------------------------ commands


@cli.command()
@db_options
@migrations_option
@runner_options
@click.option("--target", metavar="VERSION", help="Apply up to and including this version.")
@click.option("--dry-run", is_flag=True, help="Show what would run; change nothing.")
@click.option("--strict-future", is_flag=True,
              help="Exit 3 when the database has versions newer than every local file "
              "(default: warn and exit 0, so an older container can start).")
@click.option("--out-of-order", is_flag=True,
              help="Apply pending versions older than the newest applied one.")
@json_option
@handle_errors
def migrate(dsn, dsn_secret, migrations_dir, lock_timeout, lock_wait_timeout, lock_retries,
            target, dry_run, strict_future, out_of_order, as_json):
    """Apply pending migrations (then changed repeatables), one runner at a time.

    Safe as a container entrypoint: concurrent starts wait for the lock and then find
    nothing to do; a schema that is ahead of this image (after a code-only rollback) is
    accepted with a warning.
    """
    runner = build_runner(dsn, dsn_secret, migrations_dir, lock_timeout=lock_timeout,
                          lock_wait_timeout=lock_wait_timeout, lock_retries=lock_retries,
                          strict_future=strict_future, out_of_order=out_of_order)
    result = runner.migrate(parse_version(target, "--target") if target else None,
                            dry_run=dry_run)
    render_run(result, as_json)


@cli.command()
@db_options
@migrations_option
@runner_options
@click.option("--target", metavar="VERSION", required=True,
              help="Undo every applied version newer than this one (0: undo everything).")
@click.option("--dry-run", is_flag=True, help="Show what would run; change nothing.")
@json_option
@handle_errors
def undo(dsn, dsn_secret, migrations_dir, lock_timeout, lock_wait_timeout, lock_retries, target,
         dry_run, as_json):
    """Run undo scripts newest first, down to (not including) --target."""
    runner = build_runner(dsn, dsn_secret, migrations_dir, lock_timeout=lock_timeout,
                          lock_wait_timeout=lock_wait_timeout, lock_retries=lock_retries)
    render_run(runner.undo(parse_version(target, "--target"), dry_run=dry_run), as_json)


@cli.command()
@db_options
@migrations_option
@json_option
@handle_errors
def status(dsn, dsn_secret, migrations_dir, as_json):
    """Where the database stands: current version, applied, pending, blocked.

    Reads only; creates nothing. With --json: current_version, applied, pending, future,
    gaps, drift, blocked (null or {version, kind, statements_done, error, ...}).
    """
    runner = build_runner(dsn, dsn_secret, migrations_dir)
    state = runner.status()
    data = state.to_dict()
    data["database"] = runner.spec.describe()
    if as_json:
        emit_json(data)
        return
    click.echo(f"database:  {data['database']}")
    click.echo(f"current:   {data['current_version'] or '(none)'}")
    click.echo(f"applied:   {len(data['applied'])}")
    click.echo(f"pending:   {len(data['pending'])}"
               + (f" ({', '.join(data['pending'][:10])}{' …' if len(data['pending']) > 10 else ''})"
                  if data["pending"] else ""))
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
        click.echo(f"BLOCKED:   {subject} {b['kind']} {b['status']} after "
                   f"{b['statements_done']}{total} statements")
        if b["error"]:
            click.echo(f"           {b['error']}")
        click.echo("           next: `dbroll resume`, or `dbroll repair --as applied|reverted`")
    else:
        click.echo("blocked:   no")


@cli.command()
@db_options
@migrations_option
@json_option
@handle_errors
def validate(dsn, dsn_secret, migrations_dir, as_json):
    """Check every applied script's checksum and every file's syntax; report all problems.

    Exit 3 when an applied file changed, an applied version has no file, or a run is
    blocked; 0 otherwise.
    """
    from pipeline.errors import BlockedError

    runner = build_runner(dsn, dsn_secret, migrations_dir)
    state = runner.validate()
    data = state.to_dict()
    problems = []
    for d in state.drift:
        problems.append(f"{d.path}: version {d.version} was applied with sha256 "
                        f"{d.applied_checksum}, the file now has {d.file_checksum}")
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
        click.echo(f"{len(problems)} problem(s); {len(state.applied)} applied, "
                   f"{len(state.pending)} pending")
    if problems:
        raise BlockedError(f"validation found {len(problems)} problem(s)",
                           hint="`dbroll repair --checksums` accepts changed files on purpose")


@cli.command()
@db_options
@migrations_option
@runner_options
@click.option("--from-statement", type=click.IntRange(1), metavar="N",
              help="Continue at statement N instead of the first one not recorded as done "
              "(e.g. N+1 when you ran the failed statement by hand).")
@click.option("--dry-run", is_flag=True, help="Show what would run; change nothing.")
@json_option
@handle_errors
def resume(dsn, dsn_secret, migrations_dir, lock_timeout, lock_wait_timeout, lock_retries,
           from_statement, dry_run, as_json):
    """Finish a failed or interrupted migration from where it stopped.

    The blocked history row records how many statements completed; resume runs the rest
    (a DML-only migration, which ran in one transaction, starts over). Fix the cause
    first: `dbroll status` shows the error.
    """
    runner = build_runner(dsn, dsn_secret, migrations_dir, lock_timeout=lock_timeout,
                          lock_wait_timeout=lock_wait_timeout, lock_retries=lock_retries)
    render_run(runner.resume(from_statement=from_statement, dry_run=dry_run), as_json)


@cli.command()
@db_options
@migrations_option
@click.option("--as", "mark", type=click.Choice(["applied", "reverted"]),
              help="The state you left a failed or interrupted migration in by hand.")
@click.option("--checksums", is_flag=True,
              help="Accept applied files whose checksum changed (records new checksums).")
@json_option
@handle_errors
def repair(dsn, dsn_secret, migrations_dir, mark, checksums, as_json):
    """Resolve a blocked migration by hand, recorded as a repair row (history stays intact)."""
    runner = build_runner(dsn, dsn_secret, migrations_dir)
    render_run(runner.repair(mark=mark, checksums=checksums), as_json)


@cli.command()
@db_options
@migrations_option
@click.option("--version", "version", required=True, metavar="VERSION",
              help="The version the existing schema corresponds to.")
@json_option
@handle_errors
def baseline(dsn, dsn_secret, migrations_dir, version, as_json):
    """Adopt an existing database: record versions up to VERSION as applied; run nothing."""
    runner = build_runner(dsn, dsn_secret, migrations_dir)
    render_run(runner.baseline(parse_version(version, "--version")), as_json)


def main() -> None:
    cli(prog_name="dbroll")
