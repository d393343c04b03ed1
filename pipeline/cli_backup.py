"""dbroll backup list|restore (registered on the main group by pipeline.cli)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the dbroll group."""
    from pipeline.cli import aws_options, db_options, handle_errors, json_option

    @cli.group()
    def backup() -> None:
        """The data a destructive undo removed, kept in S3 (`rollback --backup`)."""

    @backup.command("list")
    @click.argument("uri", metavar="[s3://BUCKET/PREFIX]", required=False)
    @aws_options
    @json_option
    @handle_errors
    def backup_list(uri, bucket, prefix, as_json):
        """The backups under s3://BUCKET/PREFIX (default: --bucket and --prefix), newest first."""
        from pipeline.cli import boto_client, emit_json, table
        from pipeline.db.backup import list_backups
        from pipeline.errors import ConfigError

        if not uri:
            if not bucket:
                raise ConfigError("say where: s3://BUCKET/PREFIX, or --bucket")
            uri = f"s3://{bucket}/{prefix}"
        found = list_backups(boto_client("s3"), uri)
        if as_json:
            emit_json({"backups": found})
            return
        if not found:
            click.echo(f"no backups under {uri}")
            return
        click.echo(
            table(
                ("created (UTC)", "run id", "rows", "what", "uri"),
                [
                    (
                        m["created_at"][:19],
                        m["run_id"],
                        m["rows"],
                        ", ".join(
                            f"{e['table']}.{e['column']}" if e["column"] else e["table"]
                            for e in m["entries"]
                        ),
                        m["uri"],
                    )
                    for m in found
                ],
            )
        )

    @backup.command("restore")
    @click.argument("uri", metavar="s3://.../backups/RUN_ID/")
    @db_options
    @click.option("--table", "tables", multiple=True, help="Only this table (repeatable).")
    @json_option
    @handle_errors
    def backup_restore(uri, dsn, dsn_secret, tables, as_json):
        """Put backed-up data back: a dropped table into the table (re-created from the
        stored CREATE TABLE when missing, else it must be empty); a dropped column's values
        by primary key into the column, once a forward migration has re-created it.

        Every object is checked against its sha256 first. Example:
          dbroll backup restore s3://my-artifacts/dbroll/backups/build-42/ --dsn $DSN
        """
        from pipeline.cli import boto_client, build_spec, emit_json
        from pipeline.db.backup import restore
        from pipeline.db.connect import connect

        spec = build_spec(dsn, dsn_secret)
        done = restore(
            lambda: connect(spec, autocommit=False),
            boto_client("s3"),
            uri,
            tables=tables or None,
            progress=lambda line: click.echo(line, err=True),
        )
        if as_json:
            emit_json({"restored": done})
        else:
            for d in done:
                what = f"{d['table']}.{d['column']}" if d["column"] else d["table"]
                click.echo(f"restored {what}: {d['rows']} row(s)")
