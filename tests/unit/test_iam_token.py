"""The IAM token that stands in for a password (`iam=true`): signed locally with the caller's
credentials for the DSN's host, port, user and region. RDS checks the signature; here the
token's signed fields are read back, and missing region or credentials are clear errors."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from pipeline.aws import rds
from pipeline.errors import ConfigError

ENDPOINT = "shop.c9akciq32.eu-central-1.rds.amazonaws.com"


def _signed(token: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit("https://" + token)
    return parts.netloc, {k: v[-1] for k, v in parse_qs(parts.query).items()}


@pytest.mark.parametrize(
    ("host", "region"),
    [
        (ENDPOINT, "eu-central-1"),
        ("shop-proxy.proxy-c9akciq32.us-gov-west-1.rds.amazonaws.com", "us-gov-west-1"),
        ("shop.c9akciq32.cn-north-1.rds.amazonaws.com.cn", "cn-north-1"),
        ("db.internal", None),
        ("rds.amazonaws.com.evil.example", None),
    ],
)
def test_endpoint_region(host, region):
    assert rds.endpoint_region(host) == region


def test_token_is_signed_for_the_host_port_user_and_region(signing_env):
    netloc, q = _signed(rds.iam_auth_token(ENDPOINT, 3306, "dbroll", None))
    assert netloc == f"{ENDPOINT}:3306"
    assert q["Action"] == "connect" and q["DBUser"] == "dbroll"
    assert q["X-Amz-Credential"].split("/")[2:4] == ["eu-central-1", "rds-db"]
    assert q["X-Amz-Credential"].startswith("AKIDEXAMPLE/")
    assert int(q["X-Amz-Expires"]) == rds.IAM_TOKEN_TTL_S
    # the DSN's region wins over the endpoint's name; the AWS config's is the last resort
    _, q = _signed(rds.iam_auth_token(ENDPOINT, 3307, "dbroll", "eu-west-1"))
    assert "/eu-west-1/" in q["X-Amz-Credential"]
    signing_env.setenv("AWS_REGION", "ap-south-1")
    netloc, q = _signed(rds.iam_auth_token("db.internal", 3306, "app", None))
    assert netloc == "db.internal:3306" and "/ap-south-1/" in q["X-Amz-Credential"]


def test_no_region_is_a_clear_error(signing_env):
    with pytest.raises(ConfigError, match="no region") as e:
        rds.iam_auth_token("db.internal", 3306, "dbroll", None)
    assert "app@" not in str(e.value) and "dbroll@db.internal:3306" in str(e.value)
    assert "region=" in e.value.hint


def test_no_credentials_is_a_clear_error(signing_env):
    signing_env.delenv("AWS_ACCESS_KEY_ID")
    signing_env.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigError, match="cannot sign an IAM token for dbroll@") as e:
        rds.iam_auth_token(ENDPOINT, 3306, "dbroll", None)
    assert "credentials" in str(e.value).lower() and "sts get-caller-identity" in e.value.hint
