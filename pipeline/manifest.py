"""The manifest of one image: which migrations it carries, with undo scripts and checksums.

A manifest directory holds ``manifest.json`` (``dbroll.manifest/v1``) and the scripts it
names under ``sql/``, each stored with exactly the bytes whose sha256 the history table
records when the script runs. The manifest's own sha256 (over the canonical bytes of
manifest.json) is set as the image label ``io.dbroll.manifest.sha256`` at build time and
the directory is published to S3 keyed by the image digest. Pure: no AWS, no database.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.migrations.lint import Finding, lint_set
from pipeline.migrations.model import Migration, MigrationSet, Repeatable, Script, Version
from pipeline.perf import frozen, gc_paused

SCHEMA = "dbroll.manifest/v1"
LABEL = "io.dbroll.manifest.sha256"
MANIFEST_FILE = "manifest.json"


class ManifestError(ConfigError):
    """A manifest that cannot be read or does not match its files (exit 2)."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "migration"


# Every key and list element on its own line, no indentation: readable diffs, and one
# call into json's C encoder (indent= forces the pure-Python one, which made hashing a
# 10k-migration manifest cost 0.2 s).
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",\n", ":"))


def canonical_json_lines(doc: Mapping[str, Any]) -> str:
    """A dict as JSON with sorted keys, one key or list element per line."""
    return _CANONICAL.encode(doc) + "\n"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ScriptRef:
    path: str  # inside the manifest directory, e.g. sql/undo/3__add_email.sql
    source: str  # the path in the migration folder (what the history table records)
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "source": self.source, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScriptRef:
        return frozen(
            cls, {"path": str(d["path"]), "source": str(d["source"]), "sha256": str(d["sha256"])}
        )


@dataclass(frozen=True)
class ManifestMigration:
    version: Version
    description: str
    up: ScriptRef
    undo: ScriptRef | None
    transaction: bool
    klass: str
    findings: tuple[Finding, ...] = ()
    created_tables: tuple[str, ...] = ()  # tables its forward script creates

    def to_dict(self) -> dict[str, Any]:
        return {
            "created_tables": list(self.created_tables),
            "version": str(self.version),
            "description": self.description,
            "up": self.up.to_dict(),
            "undo": self.undo.to_dict() if self.undo else None,
            "transaction": self.transaction,
            "class": self.klass,
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ManifestMigration:
        undo = d.get("undo")
        findings = d.get("findings")
        return frozen(
            cls,
            {
                "version": Version.parse(str(d["version"])),
                "description": str(d.get("description", "")),
                "up": ScriptRef.from_dict(d["up"]),
                "undo": ScriptRef.from_dict(undo) if undo else None,
                "transaction": bool(d.get("transaction", True)),
                "klass": str(d.get("class", "unknown")),
                "findings": tuple(map(Finding.from_dict, findings)) if findings else (),
                "created_tables": tuple(d.get("created_tables", ())),
            },
        )


@dataclass(frozen=True)
class ManifestRepeatable:
    name: str
    description: str
    script: ScriptRef

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, **self.script.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ManifestRepeatable:
        return cls(str(d["name"]), str(d.get("description", "")), ScriptRef.from_dict(d))


@dataclass(frozen=True)
class Manifest:
    app_version: str | None
    format: str
    migrations: tuple[ManifestMigration, ...]
    repeatables: tuple[ManifestRepeatable, ...] = ()
    files: Mapping[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_version", {m.version: m for m in self.migrations})

    # -- identity
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "app_version": self.app_version,
            "format": self.format,
            "migrations": [m.to_dict() for m in self.migrations],
            "repeatables": [r.to_dict() for r in self.repeatables],
        }

    def canonical_bytes(self) -> bytes:
        """manifest.json as written and hashed (see canonical_json_lines)."""
        return canonical_json_lines(self.to_dict()).encode()

    @property
    def sha256(self) -> str:
        cached = self.__dict__.get("_sha256")
        if cached is None:
            cached = sha256_hex(self.canonical_bytes())
            object.__setattr__(self, "_sha256", cached)
        return cached

    # -- queries
    def get(self, version: Version) -> ManifestMigration | None:
        return self._by_version.get(version)  # type: ignore[attr-defined]

    @property
    def by_version(self) -> Mapping[Version, ManifestMigration]:
        """Every migration by its version (read it, do not change it)."""
        return self._by_version  # type: ignore[attr-defined, no-any-return]

    @property
    def versions(self) -> tuple[Version, ...]:
        return tuple(m.version for m in self.migrations)

    @property
    def latest(self) -> Version | None:
        return self.migrations[-1].version if self.migrations else None

    def script(self, ref: ScriptRef) -> Script:
        """The script a ref names, as the runner executes and records it."""
        data = self.files.get(ref.path)
        if data is None:
            raise ManifestError(
                f"manifest lacks {ref.path} (source {ref.source})",
                hint="rebuild it with `dbroll manifest build`",
            )
        text = data.decode("utf-8-sig")
        return Script(path=ref.source, sha256=ref.sha256, text=text)

    def to_migration_set(self, root: str = "<manifest>") -> MigrationSet:
        """The migrations as the runner knows them (scripts named by their source paths)."""
        migs = [
            Migration(
                m.version,
                m.description,
                self.script(m.up),
                self.script(m.undo) if m.undo else None,
                m.transaction,
            )
            for m in self.migrations
        ]
        reps = [Repeatable(r.name, r.description, self.script(r.script)) for r in self.repeatables]
        return MigrationSet(root, self.format, migs, reps)


def _script_bytes(root: Path, script: Script) -> bytes:
    """The bytes whose sha256 the script records: the raw file, or a dbmate section's text."""
    try:
        raw = (root / script.path).read_bytes()
    except OSError:
        raw = b""
    if sha256_hex(raw) == script.sha256:
        return raw
    data = script.text.encode()
    if sha256_hex(data) != script.sha256:
        raise ManifestError(f"{root / script.path}: cannot reproduce the bytes of its checksum")
    return data


def build_manifest(mset: MigrationSet, *, app_version: str | None = None) -> Manifest:
    """Lint every migration and gather its scripts: the manifest of one build."""
    root = Path(mset.root)
    lints = {lint.version: lint for lint in lint_set(mset)}
    files: dict[str, bytes] = {}

    def ref(kind: str, name: str, script: Script) -> ScriptRef:
        path = f"sql/{kind}/{name}.sql"
        files[path] = _script_bytes(root, script)
        return ScriptRef(path, script.path, script.sha256)

    entries = []
    for m in mset.migrations:
        lint = lints[m.version]
        name = f"{m.version}__{_slug(m.description)}"
        entries.append(
            ManifestMigration(
                version=m.version,
                description=m.description,
                up=ref("up", name, m.up),
                undo=ref("undo", name, m.undo) if m.undo else None,
                transaction=m.transaction,
                klass=lint.klass,
                findings=lint.findings,
                created_tables=tuple(sorted(lint.created_tables)),
            )
        )
    reps = [
        ManifestRepeatable(r.name, r.description, ref("repeatable", _slug(r.name), r.script))
        for r in mset.repeatables
    ]
    return Manifest(app_version, mset.format, tuple(entries), tuple(reps), files)


def write_manifest(manifest: Manifest, outdir: str | os.PathLike) -> Path:
    """Write manifest.json and its sql/ files; returns the manifest.json path."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    for path, data in sorted(manifest.files.items()):
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    target = out / MANIFEST_FILE
    target.write_bytes(manifest.canonical_bytes())
    return target


def _unsafe_path(path: str) -> bool:
    """A script path that could leave the manifest directory."""
    return ".." in path.split("/") or path.startswith("/")


def manifest_from_bytes(
    data: bytes,
    files: Mapping[str, bytes],
    *,
    source: str,
    verify: bool = True,
    read: Callable[[str], bytes | None] | None = None,
) -> Manifest:
    """Parse manifest.json bytes and check every file it names against its sha256.

    read: fetches a file `files` lacks (None when there is none), called once its path has
    been found safe. verify=False is for lazy file mappings that check each file when it is
    fetched.
    """
    with gc_paused():
        return _manifest_from_bytes(data, files, source=source, verify=verify, read=read)


def _manifest_from_bytes(
    data: bytes,
    files: Mapping[str, bytes],
    *,
    source: str,
    verify: bool,
    read: Callable[[str], bytes | None] | None,
) -> Manifest:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{source}: not a JSON manifest ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ManifestError(
            f"{source}: not a {SCHEMA} manifest (schema {doc.get('schema') if isinstance(doc, dict) else None!r})",
            hint="build one with `dbroll manifest build --migrations DIR --out DIR`",
        )
    got = dict(files)  # and what `read` fetches
    try:
        manifest = Manifest(
            app_version=doc.get("app_version"),
            format=str(doc.get("format", "")),
            migrations=tuple(ManifestMigration.from_dict(m) for m in doc["migrations"]),
            repeatables=tuple(ManifestRepeatable.from_dict(r) for r in doc.get("repeatables", [])),
            files=got,
        )
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"{source}: malformed manifest entry ({e!r})") from None
    # The manifest's identity is the sha256 of manifest.json as stored (the build writes
    # canonical bytes, so this equals the image label); no need to re-encode 10k entries.
    object.__setattr__(manifest, "_sha256", sha256_hex(data))
    refs = [m.up for m in manifest.migrations] + [m.undo for m in manifest.migrations if m.undo]
    refs += [r.script for r in manifest.repeatables]
    for r in refs:
        if _unsafe_path(r.path):
            raise ManifestError(f"{source}: unsafe path {r.path!r} in manifest")
        if not verify:
            continue
        blob = got.get(r.path)
        if blob is None and read is not None:
            blob = read(r.path)
            if blob is not None:
                got[r.path] = blob
        if blob is None:
            raise ManifestError(
                f"{source}: {r.path} (version file {r.source}) is missing",
                hint="publish the whole manifest directory, not manifest.json alone",
            )
        if sha256_hex(blob) != r.sha256:
            raise ManifestError(
                f"{source}: {r.path} does not match its sha256 in the manifest",
                hint="the file was changed after the build; rebuild the manifest",
            )
    return manifest


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read a manifest directory (or its manifest.json) from disk and verify its files."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_FILE
    if not p.is_file():
        raise ManifestError(
            f"{path}: no {MANIFEST_FILE} here",
            hint="build one with `dbroll manifest build --migrations DIR --out DIR`",
        )
    base = os.fspath(p.parent)

    def read(name: str) -> bytes | None:
        # plain open(): pathlib's per-path objects cost more than the reads
        try:
            with open(os.path.join(base, name), "rb") as fh:
                return fh.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None  # named as missing

    return manifest_from_bytes(p.read_bytes(), {}, source=str(p), read=read)
