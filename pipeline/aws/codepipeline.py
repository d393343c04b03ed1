"""CodePipeline: start the rollback pipeline with its variables, read where it stands, and
tell a stage rollback from a normal run (client passed in)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.errors import AwsError, ConfigError, NotFoundError


def _call(resource: str, fn: Any, **kwargs: Any) -> dict:
    try:
        return fn(**kwargs)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("PipelineNotFoundException", "PipelineExecutionNotFoundException"):
            raise NotFoundError(
                f"{resource} does not exist ({code})",
                hint="check the pipeline name and the region (`aws codepipeline list-pipelines`)",
            ) from None
        raise AwsError(resource, str(e)) from None
    except BotoCoreError as e:
        raise AwsError(resource, str(e)) from None


def console_url(region: str, pipeline: str, execution_id: str | None = None) -> str:
    base = f"https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{pipeline}"
    return (
        f"{base}/executions/{execution_id}/timeline?region={region}"
        if execution_id
        else (f"{base}/view?region={region}")
    )


def start_rollback(
    cp: Any, pipeline: str, target_tag: str, strategy: str | None = None
) -> tuple[str, str]:
    """Start the rollback pipeline with TARGET_TAG (and STRATEGY); (execution id, URL)."""
    if not target_tag or any(c.isspace() for c in target_tag):
        raise ConfigError(f"--to {target_tag!r}: expected an image tag such as v41")
    variables = [{"name": "TARGET_TAG", "value": target_tag}]
    if strategy:
        variables.append({"name": "STRATEGY", "value": strategy})
    resource = f"CodePipeline {pipeline}"
    declared = _call(resource, cp.get_pipeline, name=pipeline)["pipeline"]
    names = {v.get("name") for v in declared.get("variables", [])}
    if "TARGET_TAG" not in names:
        raise ConfigError(
            f"{resource} declares no pipeline variable TARGET_TAG",
            hint="deploy infra/dbroll-pipelines.yaml, whose rollback pipeline declares it",
        )
    resp = _call(resource, cp.start_pipeline_execution, name=pipeline, variables=variables)
    execution_id = resp["pipelineExecutionId"]
    return execution_id, console_url(cp.meta.region_name, pipeline, execution_id)


def pipeline_status(cp: Any, pipeline: str, execution_id: str | None = None) -> dict[str, Any]:
    """The stages and actions of the pipeline (and the execution, when given)."""
    resource = f"CodePipeline {pipeline}"
    state = _call(resource, cp.get_pipeline_state, name=pipeline)
    out: dict[str, Any] = {"pipeline": pipeline, "stages": []}
    for st in state.get("stageStates", []):
        latest = st.get("latestExecution") or {}
        out["stages"].append(
            {
                "name": st.get("stageName"),
                "status": latest.get("status", "-"),
                "execution_id": latest.get("pipelineExecutionId"),
                "actions": [
                    {
                        "name": a.get("actionName"),
                        "status": (a.get("latestExecution") or {}).get("status", "-"),
                        "summary": (a.get("latestExecution") or {}).get("summary"),
                    }
                    for a in st.get("actionStates", [])
                ],
            }
        )
    if execution_id:
        ex = _call(
            f"{resource} execution {execution_id}",
            cp.get_pipeline_execution,
            pipelineName=pipeline,
            pipelineExecutionId=execution_id,
        )["pipelineExecution"]
        out["execution"] = {
            "id": execution_id,
            "status": ex.get("status"),
            "type": ex.get("executionType", "STANDARD"),
            "variables": {v["name"]: v.get("resolvedValue") for v in ex.get("variables", [])},
        }
    return out


def execution_type(cp: Any, pipeline: str, execution_id: str) -> str:
    """STANDARD, or ROLLBACK when CodePipeline's stage rollback re-runs an older execution's
    inputs (then forward migrations must not run with the old code)."""
    ex = _call(
        f"CodePipeline {pipeline} execution {execution_id}",
        cp.get_pipeline_execution,
        pipelineName=pipeline,
        pipelineExecutionId=execution_id,
    )["pipelineExecution"]
    return str(ex.get("executionType") or "STANDARD")
