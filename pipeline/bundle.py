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
from typing import Any, NoReturn

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
    if not path or any(c in path for c in "\\\x00\n\r"):
        return "bad characters in path"
    if path.startswith("/"):
        return "absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "path escapes the bundle"
    if "" in parts or "." in parts:
        return "path is not normalized"
    return None


def referenced_files(plan: Any) -> Iterator[tuple[str, Any]]:
    """(path, sibling `sha256` value or None) for every `path` key under the plan whose value
    is a string starting with sql/, walking dicts and lists (iteratively: depth is no limit)."""
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            path = node.get("path")
            if isinstance(path, str) and path.startswith("sql/"):
                yield path, node.get("sha256")
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def _plan_bytes(plan: dict) -> bytes:
    return (json.dumps(plan, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def write_bundle(plan: dict, files: Mapping[str, bytes]) -> bytes:
    """The bundle's bytes: identical for identical inputs, so its sha256 identifies it.

    Bad paths or a plan naming a file that is not given are caller bugs (ValueError).
    """
    if not isinstance(plan, dict):
        raise ValueError("the plan must be a dict")
    for path in files:
        problem = _path_problem(path) if isinstance(path, str) else "path is not a string"
        if problem or not path.startswith("sql/"):
            raise ValueError(f"bundle entry {path!r}: {problem or 'scripts live under sql/'}")
        if not isinstance(files[path], bytes | bytearray):
            raise ValueError(f"bundle entry {path!r}: content must be bytes")
    dirs = {p.rsplit("/", 1)[0] for p in files}
    dirs |= {d[:i] for d in dirs for i in range(len(d)) if d[i] == "/"}
    clash = sorted(dirs & set(files))
    if clash:
        raise ValueError(f"bundle entry {clash[0]!r} is both a file and a folder")
    for path, _sha in referenced_files(plan):
        if path not in files:
            raise ValueError(f"the plan references {path}, which is not among the files")
    entries = {PLAN: _plan_bytes(plan), **{p: bytes(d) for p, d in files.items()}}
    sums = "".join(f"{hashlib.sha256(entries[p]).hexdigest()}  {p}\n" for p in sorted(entries))
    entries[SUMS] = sums.encode()
    order = [SUMS, PLAN, *sorted(files)]
    raw = io.BytesIO()
    # PAX only adds extended headers when a name needs them (long or non-ASCII); those carry
    # no timestamps, so the output stays deterministic.
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
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
    """Decompresses one gzip stream, refusing to produce more than `limit` bytes (gzip bombs)
    and refusing truncated input or bytes after the end of the stream.

    It also keeps what it delivered from `mark` on (the end of the last tar member), so the
    reader can check that only zero padding follows the last member: tarfile silently stops
    at a garbage header, which would hide data behind a header that claims too little.
    """

    CHUNK = 1 << 16

    def __init__(self, data: bytes, limit: int, fail: Any) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._src = memoryview(data)
        self._pos = 0
        self._buf = b""
        self._off = 0
        self._tail = b""
        self.produced = 0
        self.delivered = 0
        self.mark = 0
        self.kept = bytearray()
        self._limit = limit
        self._fail = fail

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while self._off >= len(self._buf):
            if self._d.eof:
                if self._d.unused_data or self._pos < len(self._src):
                    self._fail("unexpected data after the end of the gzip stream", None)
                return 0
            if self._tail:
                src = self._tail
            else:
                if self._pos >= len(self._src):
                    self._fail("archive is truncated", None)
                src = bytes(self._src[self._pos : self._pos + self.CHUNK])
                self._pos += len(src)
            try:
                self._buf = self._d.decompress(src, self.CHUNK)
            except zlib.error as e:
                self._fail(f"not a gzip archive or corrupt ({e})", None)
            self._off = 0
            self._tail = self._d.unconsumed_tail
            self.produced += len(self._buf)
            if self.produced > self._limit:
                self._fail(f"uncompressed size exceeds {self._limit} bytes (gzip bomb?)", None)
        n = min(len(b), len(self._buf) - self._off)
        chunk = self._buf[self._off : self._off + n]
        b[:n] = chunk
        self._off += n
        skip = self.mark - self.delivered
        if skip < n:
            self.kept += chunk[max(skip, 0) :]
        self.delivered += n
        return n

    def set_mark(self, pos: int) -> None:
        """Forget what was delivered before `pos`; keep what comes from there on."""
        del self.kept[: max(0, len(self.kept) - (self.delivered - pos))]
        self.mark = pos


def _tar_limit() -> int:
    # tar and PAX headers plus padding add at most ~4 KiB per entry, plus the end records
    return MAX_TOTAL_BYTES + 4096 * (MAX_ENTRIES + 2) + 2 * tarfile.RECORDSIZE


def read_bundle(data: bytes, source: str = "<bundle>") -> Bundle:
    """Verify and read a bundle in memory; any doubt is a BundleError and nothing is used."""

    def fail(what: str, entry: str | None) -> NoReturn:
        raise BundleError(f"bundle {source}: {what}" + (f" ({entry})" if entry else ""), hint=HINT)

    if len(data) > MAX_COMPRESSED_BYTES:
        fail(f"{len(data)} bytes is over the {MAX_COMPRESSED_BYTES}-byte limit", None)
    if data[:2] != b"\x1f\x8b":
        fail("not a gzip archive", None)
    raw = _BoundedGunzip(data, _tar_limit(), fail)
    entries: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=raw, mode="r|", encoding="utf-8", errors="strict") as tar:
            for member in tar:
                raw.set_mark(tar.offset)  # where the next header starts
                name = member.name
                if len(entries) >= MAX_ENTRIES:
                    fail(f"more than {MAX_ENTRIES} entries", name)
                if not member.isreg():
                    fail("only regular files are allowed, not links, devices or directories", name)
                problem = _path_problem(name)
                if problem:
                    fail(problem, name)
                if name not in (PLAN, SUMS) and not name.startswith("sql/"):
                    fail("unexpected entry: a bundle holds plan.json, SHA256SUMS and sql/", name)
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
            end = tar.offset
        # after the last member only zero padding may follow; read it all, so truncation,
        # bombs and bytes after the gzip stream are noticed there too
        raw.set_mark(end)
        garbage = bool(bytes(raw.kept).strip(b"\x00"))
        raw.set_mark(1 << 62)
        while not garbage and (chunk := raw.read(tarfile.RECORDSIZE)):
            garbage = bool(chunk.strip(b"\x00"))
        if garbage:
            fail("unexpected data after the last entry (a header that lies about a size?)", None)
    except tarfile.TarError as e:
        fail(f"not a valid tar archive ({e})", None)
    except UnicodeError as e:
        fail(f"an entry name is not UTF-8 ({e})", None)
    except (EOFError, OSError, ValueError) as e:
        fail(f"archive is truncated or corrupt ({e})", None)

    if SUMS not in entries:
        fail("SHA256SUMS is missing", SUMS)
    if PLAN not in entries:
        fail("plan.json is missing", PLAN)
    listed: dict[str, str] = {}
    try:
        lines = entries[SUMS].decode("utf-8").split("\n")
    except UnicodeDecodeError:
        fail("SHA256SUMS is not UTF-8", SUMS)
    if lines[-1] == "":
        lines.pop()
    for i, line in enumerate(lines, 1):
        digest, sep, path = line.partition("  ")
        if (
            not sep
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)
            or not path
            or path in listed
            or path == SUMS
        ):
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
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        fail(f"plan.json is not JSON in UTF-8 ({type(e).__name__}: {str(e)[:200]})", PLAN)
    if not isinstance(plan, dict):
        fail("plan.json is not a JSON object", PLAN)
    files = {n: b for n, b in entries.items() if n.startswith("sql/")}
    for path, sha in referenced_files(plan):
        if path not in files:
            fail("the plan references a file the bundle lacks", path)
        if sha is not None and sha != hashlib.sha256(files[path]).hexdigest():
            fail("file differs from the sha256 the plan records", path)
    return Bundle(plan=plan, files=files, sha256=bundle_sha256(data), source=source)


def verify_bundle(data: bytes, source: str = "<bundle>") -> Bundle:
    """Same as read_bundle: reading a bundle is verifying it."""
    return read_bundle(data, source)
