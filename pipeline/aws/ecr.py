"""ECR: image references -> repository and digest. The deploy side never trusts tags."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.errors import AwsError, ConfigError, NotFoundError
from pipeline.plan import ImageRef

_ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$"
)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPO = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


@dataclass(frozen=True)
class ImageName:
    repository: str
    tag: str | None = None
    digest: str | None = None
    registry_id: str | None = None
    region: str | None = None


def parse_image_ref(ref: str) -> ImageName:
    """`repo:tag`, `repo@sha256:...`, `team/repo`, or a full ECR URI with either."""
    rest = ref.strip()
    registry_id = region = None
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first):
        m = _ECR_HOST.match(first)
        if not m:
            raise ConfigError(
                f"image {ref!r} is not in an ECR registry",
                hint="use repo:tag, repo@sha256:<digest>, or "
                "<account>.dkr.ecr.<region>.amazonaws.com/repo:tag",
            )
        registry_id, region = m["account"], m["region"]
        rest = remainder
    digest = tag = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ConfigError(f"image {ref!r}: {digest!r} is not a sha256 digest")
    elif ":" in rest:
        rest, tag = rest.rsplit(":", 1)
    if not _REPO.match(rest):
        raise ConfigError(f"image {ref!r}: {rest!r} is not a repository name")
    return ImageName(rest, tag if digest is None else None, digest, registry_id, region)


class Registry:
    """Resolves image references to digests through ECR (client passed in)."""

    def __init__(self, ecr: Any) -> None:
        self.ecr = ecr

    def resolve(self, ref: str) -> ImageRef:
        name = parse_image_ref(ref)
        image_id = (
            {"imageDigest": name.digest} if name.digest else {"imageTag": name.tag or "latest"}
        )
        kwargs: dict[str, Any] = {"repositoryName": name.repository, "imageIds": [image_id]}
        if name.registry_id:
            kwargs["registryId"] = name.registry_id
        try:
            resp = self.ecr.describe_images(**kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code == "RepositoryNotFoundException":
                raise NotFoundError(
                    f"ECR repository {name.repository} does not exist",
                    hint="check the name and the region (AWS_DEFAULT_REGION or AWS_REGION)",
                ) from None
            if code == "ImageNotFoundException":
                raise NotFoundError(
                    f"image {ref} is not in ECR repository {name.repository}",
                    hint="list tags with `aws ecr describe-images --repository-name "
                    f"{name.repository}`",
                ) from None
            raise AwsError(f"ECR repository {name.repository}", str(e)) from None
        except BotoCoreError as e:
            raise AwsError(f"ECR repository {name.repository}", str(e)) from None
        details = resp.get("imageDetails") or []
        if not details:
            raise NotFoundError(f"image {ref} is not in ECR repository {name.repository}")
        return ImageRef(repository=name.repository, digest=details[0]["imageDigest"], tag=name.tag)
