"""REF -> (manifest, image): a local manifest dir or file, or an ECR image whose manifest is
in S3 (keyed by digest). Every command that takes a REF accepts both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.manifest import Manifest, load_manifest
from pipeline.plan import ImageRef


@dataclass
class ManifestSource:
    """Resolves references; AWS adapters are passed in (None when only local refs are used)."""

    registry: Any = None  # pipeline.aws.ecr.Registry
    store: Any = None  # pipeline.aws.store.ArtifactStore

    def load(self, ref: str) -> tuple[Manifest, ImageRef]:
        path = Path(ref)
        if path.exists():
            manifest = load_manifest(path)
            return manifest, ImageRef(
                manifest_sha256=manifest.sha256,
                app_version=manifest.app_version,
                tag=None,
                repository=f"local:{path}",
            )
        if self.registry is None or self.store is None:
            raise ConfigError(
                f"{ref!r} is not a local manifest, and no AWS store is configured to look it up",
                hint="give a manifest directory, or set --bucket / DBROLL_BUCKET for ECR refs",
            )
        image = self.registry.resolve(ref)
        manifest = self.store.fetch_manifest(image.repository, image.digest)
        return manifest, ImageRef(
            image.repository, image.digest, image.tag, manifest.sha256, manifest.app_version
        )

    def load_digest(
        self, repository: str, digest: str, tag: str | None = None
    ) -> tuple[Manifest, ImageRef]:
        if self.store is None:
            raise ConfigError("no AWS store configured", hint="set --bucket / DBROLL_BUCKET")
        manifest = self.store.fetch_manifest(repository, digest)
        return manifest, ImageRef(repository, digest, tag, manifest.sha256, manifest.app_version)
