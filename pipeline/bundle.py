"""Rollback bundles: write deterministically, read defensively.

A bundle is a tar.gz holding ``plan.json``, the scripts under ``sql/`` and ``SHA256SUMS``
(coreutils format, so ``sha256sum -c`` works on an extracted copy). Applying it needs
neither the app image nor the repo. Pure: standard library only.

Writing: entries sorted by path, every header zeroed (mtime, uid/gid, names) with mode 0644,
gzip header without time or file name, so identical inputs give identical bytes and the
archive's sha256 is the bundle's identity. A bundle that reading would refuse is never
written.

Reading never touches the disk: the gzip stream is inflated by a bounded reader and members
are read into memory with bounded reads, so hostile archives (links, devices, ``..``, lying
headers, gzip bombs, data hidden after the end) are refused before anything runs. Only
regular files are accepted: directory entries are refused too, because ``write_bundle``
never makes them and a bundle that has them was not made by dbroll. Any doubt is a
``BundleError`` (exit 3) whose message is ``bundle <source>: <what> (<entry>)``; the entry
is the member at fault, ``after <member>`` when the damage follows a member, or
``<archive>`` when it is the archive as a whole.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from pipeline.errors import BlockedError
from pipeline.perf import dumps_indented

# plan.json takes ~600 bytes per step, so MAX_FILE_BYTES caps a plan near 28k steps; the
# entry count (a script per step, plan.json, SHA256SUMS) is not the tighter limit below that
MAX_ENTRIES = 30_000
MAX_FILE_BYTES = 16 * 1024 * 1024  # one entry, uncompressed
MAX_TOTAL_BYTES = 256 * 1024 * 1024  # all entries, uncompressed
MAX_COMPRESSED_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 1024 * 1024  # one member's headers (PAX records, GNU long names)

PLAN = "plan.json"
SUMS = "SHA256SUMS"
ARCHIVE = "<archive>"
NEW = "<new bundle>"
HINT = "rebuild it with `dbroll plan --out`; never edit a bundle by hand"
WRITE_HINT = "the plan and its files must come from the same manifests; this is a dbroll bug"
SIZE_HINT = (
    "this plan{steps} is too large for one bundle: roll back in steps, planning to an "
    "intermediate image first (`dbroll plan --to` an older image each time)"
)
SCRIPT_SIZE_HINT = (
    "a script this large cannot travel in a bundle (bundles are read with a per-file limit): "
    "keep each undo script under it, splitting a large data restore across several migrations"
)


class BundleError(BlockedError):
    """A bundle that is malformed, tampered with or unsafe (exit 3); nothing ran."""


class BundleWriteError(BundleError, ValueError):
    """write_bundle was given paths or a plan it cannot package (a caller bug; also a
    ValueError for callers that treat it as one)."""


@dataclass(frozen=True)
class Bundle:
    plan: dict
    files: dict[str, bytes]  # path -> bytes for every sql/ entry
    sha256: str  # of the archive bytes: the bundle's identity
    source: str  # file path or s3 uri, for messages


def bundle_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha(data: bytes) -> str:
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


def _folder_clash(paths: Iterable[str]) -> str | None:
    """A path that is also a folder of another path (sql/a and sql/a/b), if any."""
    names = set(paths)
    for p in sorted(names):
        parts = p.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder in names:
                return folder
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
    # json.dumps(plan, sort_keys=True, indent=2, ensure_ascii=False), faster
    return (dumps_indented(plan) + "\n").encode()


def _tar(entries: Mapping[str, bytes]) -> bytes:
    """The bytes tarfile.open(mode="w", format=PAX_FORMAT, encoding="utf-8") writes for these
    entries, sorted by path, as regular files with every header field zeroed.

    Written from each TarInfo's own header (tobuf) instead of through TarFile.addfile, which
    copies every member and streams its data: a third of the time for 20k small scripts.
    A unit test holds it to TarFile's bytes. PAX only adds extended headers when a name needs
    them (long or non-ASCII); those carry no timestamps, so the output stays deterministic.
    """
    out = []
    for name in sorted(entries):  # "SHA256SUMS" < "plan.json" < "sql/..."
        data = entries[name]
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        out.append(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        out.append(data)
        out.append(tarfile.NUL * (-len(data) % tarfile.BLOCKSIZE))
    out.append(tarfile.NUL * (2 * tarfile.BLOCKSIZE))  # end of archive
    size = sum(map(len, out))
    out.append(tarfile.NUL * (-size % tarfile.RECORDSIZE))  # whole records, as tar -b20
    return b"".join(out)


def write_bundle(plan: dict, files: Mapping[str, bytes]) -> bytes:
    """The bundle's bytes: identical for identical inputs, so its sha256 identifies it.

    Refuses (BundleWriteError) bad paths, content that is not bytes, a plan that names a
    file not given or records another sha256 for it, and anything over the read limits.
    """

    def fail(what: str, entry: str, hint: str = WRITE_HINT) -> NoReturn:
        raise BundleWriteError(f"bundle {NEW}: {what} ({entry})", hint=hint)

    def too_large(what: str, entry: str) -> NoReturn:
        steps = plan.get("steps") if isinstance(plan, dict) else None
        count = f" ({len(steps)} steps)" if isinstance(steps, list) else ""
        fail(what, entry, SIZE_HINT.format(steps=count))

    if not isinstance(plan, dict):
        fail("the plan must be a dict", PLAN)
    for path, data in files.items():
        if not isinstance(path, str):
            fail("path is not a string", repr(path))
        problem = _path_problem(path)
        if problem or not path.startswith("sql/"):
            fail(problem or "scripts live under sql/", repr(path))
        if not isinstance(data, bytes | bytearray):
            fail("content must be bytes", path)
        if len(data) > MAX_FILE_BYTES:
            fail(f"entry is over the {MAX_FILE_BYTES}-byte limit", path, SCRIPT_SIZE_HINT)
    clash = _folder_clash(files)
    if clash:
        fail("entry is both a file and a folder", clash)
    for path, sha in referenced_files(plan):
        if path not in files:
            fail("the plan references a file that is not among the files", path)
        if sha is not None and sha != _sha(files[path]):
            fail("file differs from the sha256 the plan records", path)
    entries = {PLAN: _plan_bytes(plan), **{p: bytes(d) for p, d in files.items()}}
    if len(entries[PLAN]) > MAX_FILE_BYTES:
        too_large(f"entry is over the {MAX_FILE_BYTES}-byte limit", PLAN)
    entries[SUMS] = "".join(f"{_sha(entries[p])}  {p}\n" for p in sorted(entries)).encode()
    if len(entries) > MAX_ENTRIES:
        too_large(f"more than {MAX_ENTRIES} entries", ARCHIVE)
    if sum(len(d) for d in entries.values()) > MAX_TOTAL_BYTES:
        too_large(f"entries exceed {MAX_TOTAL_BYTES} bytes in all", ARCHIVE)
    out = io.BytesIO()
    # level 6 (gzip(1)'s default): a third of level 9's time, ~3% larger on SQL scripts
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="", compresslevel=6) as gz:
        gz.write(_tar(entries))
    if out.tell() > MAX_COMPRESSED_BYTES:
        too_large(f"{out.tell()} bytes is over the {MAX_COMPRESSED_BYTES}-byte limit", ARCHIVE)
    return out.getvalue()


class _BoundedGunzip(io.RawIOBase):
    """Inflates one gzip stream, refusing to produce more than `limit` bytes (gzip bombs),
    truncated input, and bytes after the end of the stream.

    It also keeps what it delivered from `mark` on (set to where the next tar header
    starts), for two reasons: a member's headers may not exceed MAX_HEADER_BYTES (a huge
    PAX record would otherwise be read whole into memory), and after the last member only
    zero padding may follow (tarfile stops silently at a garbage header, which would hide
    data behind a header that claims too little).
    """

    CHUNK = 1 << 16

    def __init__(self, data: bytes, limit: int, fail: Callable[[str], NoReturn]) -> None:
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
                    self._fail("unexpected data after the end of the gzip stream")
                return 0
            if self._tail:
                src = self._tail
            else:
                if self._pos >= len(self._src):
                    self._fail("archive is truncated")
                src = bytes(self._src[self._pos : self._pos + self.CHUNK])
                self._pos += len(src)
            try:
                self._buf = self._d.decompress(src, self.CHUNK)
            except zlib.error as e:
                self._fail(f"not a gzip archive or corrupt: {e}")
            self._off = 0
            self._tail = self._d.unconsumed_tail
            self.produced += len(self._buf)
            if self.produced > self._limit:
                self._fail(f"uncompressed size exceeds {self._limit} bytes: a gzip bomb?")
        n = min(len(b), len(self._buf) - self._off)
        chunk = self._buf[self._off : self._off + n]
        b[:n] = chunk
        self._off += n
        skip = self.mark - self.delivered
        if skip < n:
            self.kept += chunk[max(skip, 0) :]
            if len(self.kept) > MAX_HEADER_BYTES + tarfile.RECORDSIZE:
                self._fail(f"an entry's headers exceed {MAX_HEADER_BYTES} bytes")
        self.delivered += n
        return n

    def set_mark(self, pos: int) -> None:
        """Forget what was delivered before `pos`; keep what comes from there on."""
        del self.kept[: max(0, len(self.kept) - (self.delivered - pos))]
        self.mark = pos


def _tar_limit() -> int:
    # headers (a PAX record for a long name included) and padding: 4 KiB per entry is ample
    return MAX_TOTAL_BYTES + 4096 * (MAX_ENTRIES + 2) + 2 * tarfile.RECORDSIZE


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    """json object hook: a key given twice would leave the plan's meaning to the parser."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def read_bundle(data: bytes, source: str = "<bundle>") -> Bundle:
    """Verify and read a bundle in memory; any doubt is a BundleError and nothing is used."""
    at = [ARCHIVE]  # where reading is: an entry's name, "after <entry>" or ARCHIVE

    def fail(what: str, entry: str | None = None) -> NoReturn:
        raise BundleError(f"bundle {source}: {what} ({entry or at[0]})", hint=HINT)

    if len(data) > MAX_COMPRESSED_BYTES:
        fail(f"{len(data)} bytes is over the {MAX_COMPRESSED_BYTES}-byte limit")
    if bytes(data[:2]) != b"\x1f\x8b":
        fail("not a gzip archive")
    raw = _BoundedGunzip(data, _tar_limit(), fail)
    entries: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=raw, mode="r|", encoding="utf-8", errors="strict") as tar:
            for member in tar:
                raw.set_mark(tar.offset)  # where the next header starts
                name = at[0] = member.name
                if len(entries) >= MAX_ENTRIES:
                    fail(f"more than {MAX_ENTRIES} entries")
                if (
                    member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE)
                    or member.sparse is not None
                ):
                    fail("only regular files are allowed, not links, devices or directories")
                problem = _path_problem(name)
                if problem:
                    fail(problem)
                if name not in (PLAN, SUMS) and not name.startswith("sql/"):
                    fail("unexpected entry: a bundle holds plan.json, SHA256SUMS and sql/")
                if name in entries:
                    fail("duplicate entry")
                if member.size > MAX_FILE_BYTES:
                    fail(f"header claims {member.size} bytes, over the {MAX_FILE_BYTES}-byte limit")
                f = tar.extractfile(member)
                # bounded even though the claim was checked: never trust a reader to stop
                blob = f.read(MAX_FILE_BYTES + 1) if f else b""
                if len(blob) > MAX_FILE_BYTES:
                    fail(f"entry holds more than the {MAX_FILE_BYTES}-byte limit")
                if len(blob) != member.size:
                    fail("entry is truncated")
                total += len(blob)
                if total > MAX_TOTAL_BYTES:
                    fail(f"entries exceed {MAX_TOTAL_BYTES} bytes in all")
                entries[name] = blob
                at[0] = f"after {name}"
            end = tar.offset
        # after the last member only zero padding may follow; read it all, so truncation,
        # bombs and bytes after the gzip stream are noticed there too
        raw.set_mark(end)
        garbage = bool(bytes(raw.kept).strip(b"\x00"))
        raw.set_mark(1 << 62)
        while not garbage and (chunk := raw.read(tarfile.RECORDSIZE)):
            garbage = bool(chunk.strip(b"\x00"))
        if garbage:
            fail("unexpected data after the last entry: a header that lies about a size?")
    except tarfile.TarError as e:
        fail(f"not a valid tar archive: {e}")
    except UnicodeError as e:
        fail(f"an entry name is not UTF-8: {e}")
    except (EOFError, OSError, ValueError) as e:
        fail(f"archive is truncated or corrupt: {e}")

    if SUMS not in entries:
        fail("SHA256SUMS is missing", SUMS)
    if PLAN not in entries:
        fail("plan.json is missing", PLAN)
    clash = _folder_clash(entries)
    if clash:
        fail("entry is both a file and a folder", clash)
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
        if _sha(blob) != listed[name]:
            fail("checksum mismatch", name)
    for path in listed:
        if path not in entries:
            fail("SHA256SUMS lists a file the bundle lacks", path)
    try:
        plan = json.loads(entries[PLAN].decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as e:
        fail(f"plan.json has the key {e.args[0]!r} twice in one object", PLAN)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        fail(f"plan.json is not JSON in UTF-8: {type(e).__name__}: {str(e)[:200]}", PLAN)
    if not isinstance(plan, dict):
        fail("plan.json is not a JSON object", PLAN)
    files = {n: b for n, b in entries.items() if n.startswith("sql/")}
    for path, sha in referenced_files(plan):
        if path not in files:
            fail("the plan references a file the bundle lacks", path)
        if sha is not None and sha != _sha(files[path]):
            fail("file differs from the sha256 the plan records", path)
    return Bundle(plan=plan, files=files, sha256=bundle_sha256(data), source=source)


def verify_bundle(data: bytes, source: str = "<bundle>") -> Bundle:
    """Same as read_bundle: reading a bundle is verifying it."""
    return read_bundle(data, source)
