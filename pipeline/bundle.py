"""Rollback bundles: write deterministically, read defensively.

A bundle is a tar.gz holding ``plan.json``, the scripts under ``sql/`` and ``SHA256SUMS``
(coreutils format, so ``sha256sum -c`` works on an extracted copy). Applying it needs
neither the app image nor the repo. Reading never touches the disk: members are read into
memory through bounded readers, so hostile archives (links, devices, ``..``, lying headers,
gzip bombs) are refused before anything runs. Pure: standard library only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import BlockedError

MAX_ENTRIES = 10_000
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_TOTAL_BYTES = 256 * 1024 * 1024
MAX_COMPRESSED_BYTES = 64 * 1024 * 1024

PLAN = "plan.json"
SUMS = "SHA256SUMS"
HINT = "rebuild it with `dbroll plan --out`; never edit a bundle by hand"


class BundleError(BlockedError):
    """A bundle that is malformed, tampered with or unsafe (exit 3); nothing ran."""


@dataclass(frozen=True)
class Bundle:
    plan: dict
    files: dict[str, bytes]
    sha256: str
    source: str


def bundle_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _path_problem(path: str) -> str | None:
    if not path or "\\" in path or "\x00" in path:
        return "bad characters in path"
    if path.startswith("/"):
        return "absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "path escapes the bundle"
    if "" in parts or "." in parts:
        return "path is not normalized"
    return None


def referenced_files(plan: Any) -> Iterator[tuple[str, str | None]]:
    """(path, sha256 or None) for every `path` key under the plan whose value is in sql/."""
    if isinstance(plan, dict):
        path = plan.get("path")
        if isinstance(path, str) and path.startswith("sql/"):
            sha = plan.get("sha256")
            yield path, sha if isinstance(sha, str) else None
        for value in plan.values():
            yield from referenced_files(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from referenced_files(value)


def _plan_bytes(plan: dict) -> bytes:
    return (json.dumps(plan, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def write_bundle(plan: dict, files: Mapping[str, bytes]) -> bytes:
    """The bundle's bytes: identical for identical inputs, so its sha256 identifies it."""
    for path in files:
        problem = _path_problem(path)
        if problem or not path.startswith("sql/"):
            raise ValueError(f"bundle entry {path!r}: {problem or 'scripts live under sql/'}")
    for path, _sha in referenced_files(plan):
        if path not in files:
            raise ValueError(f"the plan references {path}, which is not among the files")
    entries = {PLAN: _plan_bytes(plan), **dict(files)}
    sums = "".join(f"{hashlib.sha256(entries[p]).hexdigest()}  {p}\n" for p in sorted(entries))
    order = [SUMS, PLAN, *sorted(files)]
    entries[SUMS] = sums.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in order:
            data = entries[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


class _BoundedGunzip(io.RawIOBase):
    """Decompresses gzip data, refusing to produce more than `limit` bytes (gzip bombs)."""

    def __init__(self, data: bytes, limit: int, fail: Any) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._src = memoryview(data)
        self._pos = 0
        self._buf = b""
        self._tail = b""
        self._out = 0
        self._limit = limit
        self._fail = fail

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            if self._d.eof:
                return 0
            if self._tail:
                src = self._tail
            else:
                if self._pos >= len(self._src):
                    self._fail("archive is truncated", None)
                src = bytes(self._src[self._pos:self._pos + 65536])
                self._pos += len(src)
            try:
                self._buf = self._d.decompress(src, 1 << 20)
            except zlib.error as e:
                self._fail(f"not a gzip archive ({e})", None)
            self._tail = self._d.unconsumed_tail
            self._out += len(self._buf)
            if self._out > self._limit:
                self._fail(f"uncompressed size exceeds {self._limit} bytes", None)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def read_bundle(data: bytes, source: str = "<bundle>") -> Bundle:
    """Verify and read a bundle in memory; any doubt is a BundleError and nothing is used."""

    def fail(what: str, entry: str | None) -> None:
        raise BundleError(f"bundle {source}: {what}" + (f" ({entry})" if entry else ""),
                          hint=HINT)

    if len(data) > MAX_COMPRESSED_BYTES:
        fail(f"{len(data)} bytes is over the {MAX_COMPRESSED_BYTES}-byte limit", None)
    if data[:2] != b"\x1f\x8b":
        fail("not a gzip archive", None)
    # tar headers and padding add at most 1.5 KiB per entry on top of the content
    stream = io.BufferedReader(
        _BoundedGunzip(data, MAX_TOTAL_BYTES + 1536 * (MAX_ENTRIES + 2) + 10240, fail))
    entries: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = member.name
                if len(entries) >= MAX_ENTRIES:
                    fail(f"more than {MAX_ENTRIES} entries", name)
                if not member.isfile():
                    fail("only regular files are allowed, not links, devices or directories",
                         name)
                problem = _path_problem(name)
                if problem:
                    fail(problem, name)
                if name in entries:
                    fail("duplicate entry", name)
                if member.size > MAX_FILE_BYTES:
                    fail(f"entry is over the {MAX_FILE_BYTES}-byte limit", name)
                f = tar.extractfile(member)
                blob = f.read(MAX_FILE_BYTES + 1) if f else b""
                if len(blob) > MAX_FILE_BYTES:
                    fail(f"entry is over the {MAX_FILE_BYTES}-byte limit", name)
                if len(blob) != member.size:
                    fail("entry is truncated", name)
                total += len(blob)
                if total > MAX_TOTAL_BYTES:
                    fail(f"entries exceed {MAX_TOTAL_BYTES} bytes in all", name)
                entries[name] = blob
    except tarfile.TarError as e:
        fail(f"not a valid tar archive ({e})", None)
    except (EOFError, OSError) as e:
        fail(f"archive is truncated or corrupt ({e})", None)

    if SUMS not in entries:
        fail("SHA256SUMS is missing", SUMS)
    if PLAN not in entries:
        fail("plan.json is missing", PLAN)
    listed: dict[str, str] = {}
    try:
        lines = entries[SUMS].decode("utf-8").splitlines()
    except UnicodeDecodeError:
        lines = ["\x00"]
    for i, line in enumerate(lines, 1):
        digest, sep, path = line.partition("  ")
        if (not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest)
                or not path or path in listed):
            fail(f"SHA256SUMS line {i} is malformed", SUMS)
        listed[path] = digest
    for name, blob in entries.items():
        if name == SUMS:
            continue
        if name not in listed:
            fail("entry is not listed in SHA256SUMS", name)
        if hashlib.sha256(blob).hexdigest() != listed[name]:
            fail("checksum mismatch", name)
    for path in listed:
        if path not in entries:
            fail("SHA256SUMS lists a file the bundle lacks", path)
    try:
        plan = json.loads(entries[PLAN].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(f"plan.json is not JSON ({e})", PLAN)
    if not isinstance(plan, dict):
        fail("plan.json is not a JSON object", PLAN)
    files = {n: b for n, b in entries.items() if n.startswith("sql/")}
    for path, sha in referenced_files(plan):
        if path not in files:
            fail("the plan references a file the bundle lacks", path)
        if sha is not None and hashlib.sha256(files[path]).hexdigest() != sha:
            fail("file differs from the checksum the plan records", path)
    return Bundle(plan=plan, files=files, sha256=bundle_sha256(data), source=source)


def verify_bundle(data: bytes, source: str = "<bundle>") -> Bundle:
    """Same as read_bundle: reading a bundle is verifying it."""
    return read_bundle(data, source)
