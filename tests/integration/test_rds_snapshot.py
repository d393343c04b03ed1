"""--rds-snapshot: a manual snapshot of the RDS instance (moto), waited for."""

from __future__ import annotations

import pytest

from pipeline.aws.rds import snapshot_id, take_snapshot
from pipeline.errors import NotFoundError


def test_snapshot_is_taken_and_tagged(aws):
    rds = aws.client("rds")
    rds.create_db_instance(
        DBInstanceIdentifier="shop-db",
        DBInstanceClass="db.t3.micro",
        Engine="mariadb",
        EngineVersion="10.11.8",
        MasterUsername="admin",
        MasterUserPassword="not-a-real-secret",
        AllocatedStorage=20,
    )
    ident = take_snapshot(rds, "shop-db", run_id="codebuild:abc/123", delay=1)
    snap = rds.describe_db_snapshots(DBSnapshotIdentifier=ident)["DBSnapshots"][0]
    assert snap["Status"] == "available" and snap["DBInstanceIdentifier"] == "shop-db"
    tags = rds.list_tags_for_resource(ResourceName=snap["DBSnapshotArn"])["TagList"]
    assert {"Key": "dbroll:run-id", "Value": "codebuild:abc/123"} in tags


def test_unknown_instance_is_named(aws):
    with pytest.raises(NotFoundError, match="RDS instance nope does not exist"):
        take_snapshot(aws.client("rds"), "nope", run_id=None, delay=1)


def test_identifiers_are_valid():
    ident = snapshot_id("shop-db", "arn:aws:codebuild:eu-west-1:1:build/x:9f--", now=0)
    assert ident == "dbroll-shop-db-19700101-000000-arn-aws-codebuild-eu-west-1-1-build-x-9f"
    assert ident[0].isalpha() and "--" not in ident
