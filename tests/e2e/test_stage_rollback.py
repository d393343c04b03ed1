"""CodePipeline's own stage rollback re-runs the Deploy stage with an older image: `dbroll
deploy --pipeline-execution-id` sees executionType ROLLBACK and takes the undo path."""

from __future__ import annotations

import pytest

from tests.conftest import dbroll
from tests.integration.test_codepipeline import _pipeline

pytestmark = pytest.mark.e2e


def test_deploy_in_a_stage_rollback_takes_the_undo_path(aws, release, on_service, db, monkeypatch):
    """CodePipeline's stage rollback re-runs the Deploy stage with the older image: dbroll
    deploy must then undo what the older image does not know, not migrate forward."""
    # moto leaves executionType out (and builds its answer differently from release to
    # release), so the answer is amended where botocore hands it back to the caller
    from botocore.client import BaseClient

    original = BaseClient._make_api_call

    def make_api_call(self, operation_name, api_params):
        answer = original(self, operation_name, api_params)
        if operation_name == "GetPipelineExecution":
            answer["pipelineExecution"]["executionType"] = "ROLLBACK"
        return answer

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    _pipeline(aws, "shop-deploy", variables=False)
    execution = aws.client("codepipeline").start_pipeline_execution(name="shop-deploy")
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    on_service(release["v3"]["digest"])
    r = dbroll(
        "deploy", "--cluster", "prod", "--service", "web", "--image", "shop:v1", "--bucket", "art",
        "--executor", "local", "--dsn", dsn, "--pipeline-name", "shop-deploy",
        "--pipeline-execution-id", execution["pipelineExecutionId"],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "stage rollback: taking the undo path" in r.stderr
    st = dbroll("status", "--dsn", dsn, "--migrations", str(release["v3"]["dir"]), "--json")
    assert st.json["applied"] == ["1", "2"]
