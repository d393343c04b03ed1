"""Every AWS call dbroll makes on the ECS path is allowed by the CodeBuild role's IAM policy.

CodeBuild runs `dbroll deploy`, `dbroll plan` and `dbroll rollback` as CodeBuildRole of
infra/dbroll-pipelines.yaml (plus CodeBuildAlsoService, the worker's grant). Here a real
code-only rollback, a rollback whose undo scripts run in a one-off task, a deploy and a plan
run on moto with every boto3 call recorded; each call is mapped to its IAM action and resource
ARN (the Service Authorization Reference) and evaluated against the role's Allow statements.
A call added to the code without its permission fails here, not in production (AccessDenied).
"""

from __future__ import annotations

import contextlib
import re
import sys
from unittest import mock

import botocore.client
import pytest

from tests.conftest import REPO, args, dbroll, query
from tests.e2e.conftest import V4, db_secret, publish_release, run_worker
from tests.unit.test_infra import load

pytestmark = pytest.mark.e2e

TEMPLATE = REPO / "infra" / "dbroll-pipelines.yaml"
ACCOUNT, REGION = "123456789012", "eu-west-1"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
          "AWS::StackName": "shop"}  # fmt: skip
# the stack's parameters as this test's world has them; the others keep their defaults
PARAMETERS = {
    "ClusterName": "prod", "ServiceName": "web", "AlsoServiceName": "worker",
    "TaskDefinitionFamily": "shop", "EcrRepositoryName": "shop", "CodeCommitRepositoryName": "shop",
    "TaskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shop-task",
    "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shop-execution",
    "DbSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:shop-db-AbCdEf",
    "CodeDeployGroup": "shop/web-bg",
}  # fmt: skip
RESOURCES = {"ArtifactBucket": "art", "ArtifactBucket.Arn": "arn:aws:s3:::art",
             "PipelineArtifactBucket": "art-pipelines",
             "PipelineArtifactBucket.Arn": "arn:aws:s3:::art-pipelines"}  # fmt: skip
ECS = f"arn:aws:ecs:{REGION}:{ACCOUNT}:"
RUNNER = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/dbroll-runner:1.0"  # --runner IMAGE
S3_ACTIONS = {"ListObjectsV2": "ListBucket", "HeadObject": "GetObject", "HeadBucket": "ListBucket"}
S3_BUCKET_OPS = {"ListObjectsV2", "ListObjects", "HeadBucket", "GetBucketLocation"}
NO_PERMISSION = {"sts:GetCallerIdentity"}  # AWS authorizes it for any caller


# ------------------------------------------------------------------ the policy


def _render(value, params: dict):
    """A template value with !Sub, !Ref and !GetAtt resolved for this test's stack."""
    names = {**PSEUDO, **params, **RESOURCES}
    if isinstance(value, list):
        return [_render(v, params) for v in value]
    if not isinstance(value, dict):
        return value
    if "Sub" in value:  # "text", or ["text", {local names}]
        text, local = value["Sub"] if isinstance(value["Sub"], list) else (value["Sub"], {})
        names |= {k: _render(v, params) for k, v in local.items()}
        return re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], text)
    if "Select" in value:
        index, items = value["Select"]
        return _render(items, params)[int(index)]
    if "Split" in value:
        separator, text = value["Split"]
        return _render(text, params).split(separator)
    if "Ref" in value:
        return names[value["Ref"]]
    if "GetAtt" in value:  # "Bucket.Arn" or [Bucket, Arn]
        return names[".".join(_listed(value["GetAtt"]))]
    return {k: _render(v, params) for k, v in value.items()}


def _holds(condition, template: dict, params: dict) -> bool:
    """A template Condition: Not / Equals of Refs and strings, by name or inline."""
    if isinstance(condition, str):
        return _holds(template["Conditions"][condition], template, params)
    if "Not" in condition:
        return not _holds(condition["Not"][0], template, params)
    a, b = _render(condition["Equals"], params)
    return a == b


def codebuild_statements(template: dict) -> list[dict]:
    """The Allow statements CodeBuildRole holds: its inline policies and the AWS::IAM::Policy
    resources attached to it whose Condition holds, rendered."""
    params = {k: p["Default"] for k, p in template["Parameters"].items() if "Default" in p}
    params |= PARAMETERS
    role = template["Resources"]["CodeBuildRole"]["Properties"]
    docs = [p["PolicyDocument"] for p in role["Policies"]]
    for res in template["Resources"].values():
        props = res.get("Properties", {})
        if (
            res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
            and {"Ref": "CodeBuildRole"} in props.get("Roles", [])
            and ("Condition" not in res or _holds(res["Condition"], template, params))
        ):
            docs.append(props["PolicyDocument"])
    return [_render(st, params) for d in docs for st in d["Statement"] if st["Effect"] == "Allow"]


def task_role_statements(template: dict, **given: str) -> list[dict]:
    """The Allow statements of the managed policies for the service's task role
    (TaskRolePolicy, TaskRoleDbIamConnect when its Condition holds), rendered."""
    params = {k: p["Default"] for k, p in template["Parameters"].items() if "Default" in p}
    params |= PARAMETERS | given
    policies = [template["Resources"][n] for n in ("TaskRolePolicy", "TaskRoleDbIamConnect")]
    docs = [
        p["Properties"]["PolicyDocument"]
        for p in policies
        if "Condition" not in p or _holds(p["Condition"], template, params)
    ]
    return [_render(st, params) for d in docs for st in d["Statement"] if st["Effect"] == "Allow"]


def _like(pattern: str, value: str, flags: int = 0) -> bool:
    """IAM wildcard match: `*` any run of characters, `?` one character."""
    rx = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(rx, value, flags) is not None


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _conditions_hold(condition: dict, context: dict) -> bool:
    """Conditions are checked: ArnEquals/ArnLike/StringEquals/StringLike against the request
    context (ecs:cluster); a key the request does not carry fails the condition, as in IAM."""
    for op, keys in condition.items():
        for key, wanted in keys.items():
            like = op in ("ArnEquals", "ArnLike", "StringLike")
            if key not in context or not any(
                _like(w, context[key]) if like else w == context[key] for w in _listed(wanted)
            ):
                return False
    return True


def allowed(statements: list[dict], action: str, resource: str, context: dict) -> bool:
    return any(
        any(_like(a, action, re.IGNORECASE) for a in _listed(st["Action"]))
        and any(_like(r, resource) for r in _listed(st["Resource"]))
        and _conditions_hold(st.get("Condition", {}), context)
        for st in statements
    )


# ------------------------------------------------------------------ calls -> IAM requests


def iam_requests(prefix: str, op: str, p: dict) -> list[tuple[str, str, dict]]:
    """(action, resource ARN, condition context) of one API call. KeyError: not mapped yet."""
    action = f"{prefix}:{S3_ACTIONS.get(op, op) if prefix == 's3' else op}"
    if action in NO_PERMISSION:
        return []
    if prefix == "ecs":
        cluster = p.get("cluster", "default").rsplit("/", 1)[-1]
        ctx = {"ecs:cluster": f"{ECS}cluster/{cluster}"} if "cluster" in p else {}
        td = p.get("taskDefinition", "")
        td = td if ":" in td else f"{td}:*"  # a bare family: its latest revision

        def arn(kind: str, name: str) -> str:
            return name if name.startswith("arn:") else f"{ECS}{kind}/{cluster}/{name}"

        arns = {
            "DescribeServices": lambda: [arn("service", s) for s in p["services"]],
            "UpdateService": lambda: [arn("service", p["service"])],
            **dict.fromkeys(
                ("TagResource", "UntagResource", "ListTagsForResource"), lambda: [p["resourceArn"]]
            ),
            "RunTask": lambda: [td if td.startswith("arn:") else f"{ECS}task-definition/{td}"],
            "DescribeTasks": lambda: [arn("task", t) for t in p["tasks"]],
            "StopTask": lambda: [arn("task", p["task"])],
            "ListTasks": lambda: [f"{ECS}container-instance/{cluster}/*"],
            **dict.fromkeys(("DescribeTaskDefinition", "RegisterTaskDefinition"), lambda: ["*"]),
        }[op]()
        out = [(action, a, ctx) for a in arns]
        if op == "RegisterTaskDefinition" and p.get("tags"):  # tags on create
            new = f"{ECS}task-definition/{p['family']}:*"
            out.append(("ecs:TagResource", new, {"ecs:CreateAction": "RegisterTaskDefinition"}))
        return out
    if prefix == "ecr":
        if op == "GetAuthorizationToken":
            return [(action, "*", {})]
        return [(action, f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{p['repositoryName']}", {})]
    if prefix == "s3":
        key = "" if op in S3_BUCKET_OPS else "/" + p["Key"]
        return [(action, f"arn:aws:s3:::{p['Bucket']}{key}", {})]
    if prefix == "codedeploy":
        group = p.get("_group") or f"{p['applicationName']}/{p['deploymentGroupName']}"
        return [(action, f"arn:aws:codedeploy:{REGION}:{ACCOUNT}:deploymentgroup:{group}", {})]
    if prefix == "secretsmanager" and op == "GetSecretValue":  # dbroll passes the ARN
        return [(action, p["SecretId"], {})]
    if prefix == "logs" and op == "GetLogEvents":
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{p['logGroupName']}"
        return [(action, f"{group}:log-stream:{p['logStreamName']}", {})]
    raise KeyError(action)


def denied_calls(statements: list[dict], calls: list[tuple[str, str, dict]]) -> list[str]:
    """`action on resource` of each request the statements do not allow (unmapped calls too)."""
    out = []
    for prefix, op, params in calls:
        try:
            requests = iam_requests(prefix, op, params)
        except KeyError:
            out.append(f"{prefix}:{op} is not mapped to an IAM request: map it in iam_requests")
            continue
        out += [f"{a} on {r}" for a, r, ctx in requests if not allowed(statements, a, r, ctx)]
    return sorted(set(out))


@contextlib.contextmanager
def recording_aws_calls(calls: list):
    """Record (signing name, operation, params) of every boto3 call but moto's own (the fake
    task writing its CloudWatch lines from inside the moto server)."""
    original = botocore.client.BaseClient._make_api_call

    def record(client, operation_name, api_params):
        frame = sys._getframe(1)
        while frame and not frame.f_globals.get("__name__", "").startswith("moto."):
            frame = frame.f_back
        response = original(client, operation_name, api_params)
        if frame is None:
            model = client.meta.service_model
            if operation_name == "GetDeployment":  # authorized on the deployment's group
                info = response["deploymentInfo"]
                group = f"{info['applicationName']}/{info['deploymentGroupName']}"
                api_params = {**api_params, "_group": group}
            calls.append((model.signing_name or model.service_name, operation_name, api_params))
        return response

    with mock.patch.object(botocore.client.BaseClient, "_make_api_call", record):
        yield calls


def test_every_aws_call_of_a_rollback_deploy_and_plan_is_allowed_to_codebuild(
    release, aws, db, tmp_path, shop_service, ecs_runs_locally
):
    """prod/web (its task definition tagged) and the worker on v4; back to v3 (code-only),
    back to v2 (undo scripts in a one-off task), forward to v3 (migrations in a one-off task
    of a dedicated runner image), and the rollback pipeline's plan, the worker named as the
    CodeBuild projects name it (DBROLL_ALSO_SERVICES)."""
    v4 = publish_release(tmp_path, aws.client("ecr"), "v4", V4)
    assert dbroll("migrate", *args(db, v4["dir"])).exit_code == 0
    shop_service(v4["digest"])
    run_worker(aws, v4["digest"])
    service = ("--cluster", "prod", "--service", "web", "--bucket", "art")
    commands = [
        ("rollback", *service, "--yes", "--to", "shop:v3"),
        ("rollback", *service, "--yes", "--to", "shop:v2"),
        ("deploy", *service, "--image", "shop:v3", "--runner", RUNNER),
        ("plan", "--from-service", "prod/web", "--to", "shop:v2", "--bucket", "art",
         "--out", str(tmp_path / "bundle.tgz"), "--markdown", str(tmp_path / "plan.md")),
    ]  # fmt: skip
    calls: list = []
    for command in commands:
        with recording_aws_calls(calls):
            r = dbroll(*command, env={"DBROLL_ALSO_SERVICES": "worker"})
        assert r.exit_code == 0, f"dbroll {' '.join(command)}:\n{r.stderr}"
    ran = [t["command"][1] for t in ecs_runs_locally if t["exit"] == 0]
    assert ran[-2:] == ["apply-bundle", "migrate"], ecs_runs_locally  # the undo, the migrations
    made = {f"{prefix}:{op}" for prefix, op, _ in calls}
    # the paths this test is about were taken: the image, manifests, task, its log, the move
    wanted = "ecr:DescribeImages s3:GetObject s3:PutObject ecs:RunTask ecs:DescribeTasks"
    wanted += " logs:GetLogEvents ecs:RegisterTaskDefinition ecs:UpdateService"
    assert set(wanted.split()) <= made, made
    assert denied_calls(codebuild_statements(load(TEMPLATE)), calls) == []


def test_the_evaluation_denies_what_the_policy_does_not_grant():
    """Without ecs:UpdateService in CodeBuildRole, moving prod/web is denied (the worker's
    own grant still allows it there); RunTask in another cluster fails the ecs:cluster
    condition; a call with no mapping is reported, not passed."""
    template = load(TEMPLATE)
    web = ("ecs", "UpdateService", {"cluster": "prod", "service": "web", "taskDefinition": "shop"})
    worker = ("ecs", "UpdateService", {"cluster": "prod", "service": "worker"})
    elsewhere = ("ecs", "RunTask", {"cluster": "staging", "taskDefinition": "shop:3"})
    unmapped = ("ecs", "DeleteService", {"cluster": "prod", "service": "web"})
    assert denied_calls(codebuild_statements(template), [web, worker]) == []
    (inline,) = template["Resources"]["CodeBuildRole"]["Properties"]["Policies"]
    for st in inline["PolicyDocument"]["Statement"]:
        st["Action"] = [a for a in _listed(st["Action"]) if a != "ecs:UpdateService"]
    assert denied_calls(codebuild_statements(template), [web, worker, elsewhere, unmapped]) == [
        "ecs:DeleteService is not mapped to an IAM request: map it in iam_requests",
        f"ecs:RunTask on {ECS}task-definition/shop:3",
        f"ecs:UpdateService on {ECS}service/prod/web",
    ]


def test_every_aws_call_of_a_blue_green_move_is_allowed_to_codebuild(release, aws, db, blue_green):
    """A CODE_DEPLOY service (CodeDeployGroup given, as the projects pass it): a rollback and
    a deploy, each a CodeDeploy deployment, from CodeBuild inside the VPC (--executor local)."""
    dsn = db.to_dsn()
    assert dbroll("migrate", "--dsn", dsn, "--migrations", str(release["v3"]["dir"])).exit_code == 0
    blue_green["deploy"](release["v3"]["digest"])
    move = ("--cluster", "prod", "--service", "web", "--bucket", "art", "--executor", "local")
    calls: list = []
    for command in (
        ("rollback", *move, "--dsn", dsn, "--yes", "--to", "shop:v1"),
        ("deploy", *move, "--dsn", dsn, "--image", "shop:v3"),
    ):
        with recording_aws_calls(calls):
            r = dbroll(*command, env={"DBROLL_CODEDEPLOY_GROUP": "shop/web-bg"})
        assert r.exit_code == 0, f"dbroll {' '.join(command[:1])}:\n{r.stderr}"
    made = {f"{prefix}:{op}" for prefix, op, _ in calls}
    assert {"codedeploy:CreateDeployment", "codedeploy:GetDeployment"} <= made, made
    assert len(blue_green["appspecs"]) == 2
    assert denied_calls(codebuild_statements(load(TEMPLATE)), calls) == []


def test_every_aws_call_of_the_one_off_tasks_is_allowed_to_the_task_role(
    release, aws, db, tmp_path
):
    """The commands dbroll gives its one-off tasks, run here as the task runs them (the
    database from the secret, bucket and prefix on the command line, no DBROLL_BUCKET): a
    deploy's `migrate --manifest` on an empty database, then a rollback's `apply-bundle`
    back to v1 with the Execute stage's --backup (rows in what the undo drops). Each AWS call
    is allowed by TaskRolePolicy, the policy infra/README.md says to attach to the task role."""
    secret = db_secret(aws, db)
    where = ("--bucket", "art", "--prefix", "dbroll", "--dsn-secret", secret)
    v3 = release["v3"]["digest"]
    calls: list = []
    with recording_aws_calls(calls):
        r = dbroll("migrate", "--manifest", f"shop@{v3}", *where, env={"DBROLL_BUCKET": ""})
    assert r.exit_code == 0, r.stderr
    query(db, "INSERT INTO customers (full_name) VALUES ('Ada')")
    query(db, "INSERT INTO coupons VALUES ('TEN')")
    query(db, "INSERT INTO orders (customer_id, total, coupon) VALUES (1, 5, 'TEN')")
    bundle = tmp_path / "bundle.tgz"
    planned = dbroll("plan", "--from", "shop:v3", "--to", "shop:v1", "--bucket", "art",
                     "--out", str(bundle))  # fmt: skip
    assert planned.exit_code == 0, planned.stderr
    from pipeline.aws.store import ArtifactStore

    uri = ArtifactStore(aws.client("s3"), "art").put_bundle(bundle.read_bytes())
    with recording_aws_calls(calls):
        r = dbroll("apply-bundle", uri, *where, "--backup", "s3://art/dbroll", "--json",
                   env={"DBROLL_BUCKET": "", "DBROLL_RUN_ID": "run-1", "DBROLL_TASK": "1"})  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert r.json["backup"]["rows"] == 2, r.json  # the coupon, and the orders row's coupon
    # the paths this test is about were taken
    writes = sorted(p["Key"].split("/")[1] for _, op, p in calls if op == "PutObject")
    assert set(writes) == {"snapshots", "backups"}, writes
    made = {f"{prefix}:{op}" for prefix, op, _ in calls}
    assert made >= {"ecr:DescribeImages", "s3:GetObject", "secretsmanager:GetSecretValue"}, made
    statements = task_role_statements(load(TEMPLATE), DbSecretArn=secret)
    assert denied_calls(statements, calls) == []
    # migrate read the image's snapshot before there was one: without s3:ListBucket on the
    # bucket, S3 answers that GetObject with 403 (AccessDenied), not 404 (NoSuchKey)
    assert allowed(statements, "s3:ListBucket", "arn:aws:s3:::art", {})
