"""S3 artifact store: manifests (by image digest), bundles (by sha256), immutable once written.

Layout under ``s3://<bucket>/<prefix>/``::

    manifests/<repository>/<sha256:digest>/manifest.json   written last: its presence
    manifests/<repository>/<sha256:digest>/sql/...         means the upload is complete
    bundles/<sha256>.tgz
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.errors import AwsError, BlockedError, ConfigError, NotFoundError
from pipeline.manifest import (
    MANIFEST_FILE,
    Manifest,
    ManifestError,
    manifest_from_bytes,
    sha256_hex,
)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise ConfigError(f"{uri!r} is not an s3://bucket/key URI")
    return parts.netloc, parts.path.lstrip("/")


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


class ArtifactStore:
    """Manifests and bundles in one S3 bucket (client passed in)."""

    def __init__(self, s3: Any, bucket: str, prefix: str = "dbroll") -> None:
        if not bucket:
            raise ConfigError(
                "no artifact bucket configured", hint="pass --bucket or set DBROLL_BUCKET"
            )
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def manifest_key(self, repository: str, digest: str) -> str:
        return self._key("manifests", repository, digest) + "/"

    # -- raw objects
    def _get(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as e:
            if _code(e) in ("NoSuchKey", "404", "NotFound"):
                return None
            if _code(e) == "NoSuchBucket":
                raise NotFoundError(
                    f"S3 bucket {bucket} does not exist", hint="create it (infra/) or fix --bucket"
                ) from None
            raise AwsError(f"s3://{bucket}/{key}", str(e)) from None
        except BotoCoreError as e:
            raise AwsError(f"s3://{bucket}/{key}", str(e)) from None

    def _put(self, key: str, data: bytes) -> None:
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256")
        except ClientError as e:
            if _code(e) == "NoSuchBucket":
                raise NotFoundError(
                    f"S3 bucket {self.bucket} does not exist",
                    hint="create it (infra/) or fix --bucket",
                ) from None
            raise AwsError(self.uri(key), str(e), hint="check s3:PutObject permission") from None
        except BotoCoreError as e:
            raise AwsError(self.uri(key), str(e)) from None

    def get_uri(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        data = self._get(bucket, key)
        if data is None:
            raise NotFoundError(f"{uri} does not exist")
        return data

    # -- manifests
    def publish_manifest(
        self, manifest: Manifest, repository: str, digest: str
    ) -> tuple[str, bool]:
        """Upload; returns (uri, created). The same manifest again is a no-op; another is refused."""
        base = self.manifest_key(repository, digest)
        existing = self._get(self.bucket, base + MANIFEST_FILE)
        if existing is not None:
            if sha256_hex(existing) == manifest.sha256:
                return self.uri(base), False
            raise BlockedError(
                f"{self.uri(base)} already holds a different manifest (sha256 "
                f"{sha256_hex(existing)[:12]}) for image {repository}@{digest}",
                hint="manifests are immutable: an image digest has exactly one manifest; "
                "build a new image for changed migrations",
            )
        for path, data in sorted(manifest.files.items()):
            self._put(base + path, data)
        self._put(base + MANIFEST_FILE, manifest.canonical_bytes())
        return self.uri(base), True

    def fetch_manifest(self, repository: str, digest: str) -> Manifest:
        base = self.manifest_key(repository, digest)
        data = self._get(self.bucket, base + MANIFEST_FILE)
        if data is None:
            raise NotFoundError(
                f"no manifest for {repository}@{digest} at {self.uri(base)}",
                hint="was the image built with `dbroll manifest publish`? (check --bucket and "
                "--prefix)",
            )
        manifest = manifest_from_bytes(data, {}, source=self.uri(base), verify=False)
        refs = [m.up for m in manifest.migrations]
        refs += [m.undo for m in manifest.migrations if m.undo]
        refs += [r.script for r in manifest.repeatables]
        files = _LazyFiles(self, base, {r.path: r.sha256 for r in refs})
        return replace(manifest, files=files)

    # -- audit
    def audit_key(self, run_id: str | None, stamp: str | None = None) -> str:
        """audit/<utc-timestamp>-<run-id>.json (the timestamp shown as <utc-timestamp> when
        not given: a dry run names the key pattern)."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in (run_id or "manual"))
        return self._key("audit", f"{stamp or '<utc-timestamp>'}-{safe}.json")

    def put_audit(self, record: dict, run_id: str | None) -> str:
        """One JSON record per rollback or deploy run: audit/<utc-timestamp>-<run-id>.json."""
        import datetime as dt
        import json

        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        key = self.audit_key(run_id, stamp)
        self._put(key, json.dumps(record, indent=2, sort_keys=True, default=str).encode())
        return self.uri(key)

    # -- schema snapshots (the schema an image's migrations produced, per image digest)
    def snapshot_key(self, repository: str, digest: str) -> str:
        return self._key("snapshots", repository, f"{digest}.json")

    def put_snapshot(self, repository: str, digest: str, snapshot: dict) -> str | None:
        """Store the first snapshot taken after `digest`'s migrations ran; later ones are
        compared with it, never written over it. Returns the URI when written."""
        import json

        key = self.snapshot_key(repository, digest)
        if self._get(self.bucket, key) is not None:
            return None
        self._put(key, json.dumps(snapshot, indent=2, sort_keys=True).encode())
        return self.uri(key)

    def get_snapshot(self, repository: str, digest: str) -> dict | None:
        import json

        data = self._get(self.bucket, self.snapshot_key(repository, digest))
        return json.loads(data) if data is not None else None

    # -- bundles
    def bundle_uri_for(self, data: bytes) -> str:
        return self.uri(self._key("bundles", f"{sha256_hex(data)}.tgz"))

    def put_bundle(self, data: bytes) -> str:
        key = self._key("bundles", f"{sha256_hex(data)}.tgz")
        if self._get(self.bucket, key) is None:
            self._put(key, data)
        return self.uri(key)


class _LazyFiles(Mapping[str, bytes]):
    """A manifest's scripts, fetched from S3 only when used and checked against their sha256
    (a rollback needs a handful of undo scripts, not the thousand files of a long history)."""

    def __init__(self, store: ArtifactStore, base: str, expected: dict[str, str]) -> None:
        self._store, self._base, self._expected = store, base, expected
        self._cache: dict[str, bytes] = {}

    def __getitem__(self, path: str) -> bytes:
        if path not in self._expected:
            raise KeyError(path)
        if path not in self._cache:
            uri = self._store.uri(self._base + path)
            blob = self._store._get(self._store.bucket, self._base + path)
            if blob is None:
                raise ManifestError(
                    f"{uri} is missing", hint="publish the whole manifest directory again"
                )
            if sha256_hex(blob) != self._expected[path]:
                raise ManifestError(
                    f"{uri} does not match its sha256 in the manifest",
                    hint="objects under manifests/ must never be edited",
                )
            self._cache[path] = blob
        return self._cache[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._expected)

    def __len__(self) -> int:
        return len(self._expected)
