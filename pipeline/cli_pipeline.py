"""dbroll pipeline start-rollback|status (registered on the main group by pipeline.cli)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the dbroll group."""
    from pipeline.cli import handle_errors, json_option

    @cli.group()
    def pipeline() -> None:
        """Drive the rollback pipeline (infra/dbroll-pipelines.yaml)."""

    @pipeline.command("start-rollback")
    @click.option(
        "--pipeline", "name", required=True, envvar="DBROLL_ROLLBACK_PIPELINE",
        help="The rollback pipeline's name.",
    )  # fmt: skip
    @click.option("--to", "tag", required=True, metavar="TAG", help="The image tag to go back to.")
    @click.option(
        "--strategy",
        type=click.Choice(["auto", "undo", "code-only"]),
        help="Passed as the pipeline variable STRATEGY (default: the pipeline's, auto).",
    )
    @json_option
    @handle_errors
    def start_rollback_cmd(name, tag, strategy, as_json):
        """Start the rollback pipeline: Plan -> manual approval showing the plan -> Execute.

        \b
        Example:
          dbroll pipeline start-rollback --pipeline shop-rollback --to v41
        """
        from pipeline.aws.codepipeline import start_rollback
        from pipeline.cli import boto_client, emit_json

        execution_id, url = start_rollback(boto_client("codepipeline"), name, tag, strategy)
        if as_json:
            emit_json({"pipeline": name, "execution_id": execution_id, "url": url})
        else:
            click.echo(f"started {name}: execution {execution_id}")
            click.echo(f"  {url}")
            click.echo(f"  dbroll pipeline status --pipeline {name} --execution-id {execution_id}")

    @pipeline.command("status")
    @click.option(
        "--pipeline", "name", required=True, envvar="DBROLL_ROLLBACK_PIPELINE",
        help="The pipeline's name.",
    )  # fmt: skip
    @click.option("--execution-id", help="Also show this execution (status, type, variables).")
    @json_option
    @handle_errors
    def status_cmd(name, execution_id, as_json):
        """The pipeline's stages and actions, latest first."""
        from pipeline.aws.codepipeline import pipeline_status
        from pipeline.cli import boto_client, emit_json, table

        st = pipeline_status(boto_client("codepipeline"), name, execution_id)
        if as_json:
            emit_json(st)
            return
        rows = [
            (s["name"], s["status"], a["name"], a["status"], (a["summary"] or "")[:60])
            for s in st["stages"]
            for a in (s["actions"] or [{"name": "-", "status": "-", "summary": ""}])
        ]
        click.echo(table(("stage", "status", "action", "action status", "summary"), rows))
        ex = st.get("execution")
        if ex:
            vars_ = ", ".join(f"{k}={v}" for k, v in sorted(ex["variables"].items()))
            click.echo(f"execution {ex['id']}: {ex['status']} ({ex['type']}) {vars_}".rstrip())
