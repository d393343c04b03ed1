"""Rollback bundles: deterministic bytes, and every hostile archive refused (pure)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile

import pytest

from pipeline import bundle as B
from pipeline.bundle import BundleError, read_bundle, write_bundle

UNDO = b"ALTER TABLE customers DROP COLUMN email;\n"
REP = b"CREATE OR REPLACE VIEW v AS SELECT 1;\n"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


PLAN = {"schema": "dbroll.plan/v1", "steps": [
    {"action": "undo", "path": "sql/undo/3__email.sql", "sha256": sha(UNDO)},
    {"action": "repeatable", "path": "sql/repeatable/views.sql", "sha256": sha(REP)}]}
FILES = {"sql/undo/3__email.sql": UNDO, "sql/repeatable/views.sql": REP}


def test_round_trip_and_determinism(tmp_path):
    data = write_bundle(PLAN, FILES)
    b = read_bundle(data, "rb.tgz")
    assert b.plan == PLAN and b.files == FILES and b.sha256 == sha(data)
    assert write_bundle(PLAN, dict(reversed(list(FILES.items())))) == data
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert names == ["SHA256SUMS", "plan.json", "sql/repeatable/views.sql",
                     "sql/undo/3__email.sql"]
    # coreutils can check it on an extracted copy
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp_path, filter="data")
    proc = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_different_plan_is_a_different_bundle():
    other = {**PLAN, "strategy": "undo"}
    assert sha(write_bundle(PLAN, FILES)) != sha(write_bundle(other, FILES))


@pytest.mark.parametrize("path", ["/abs.sql", "sql/../x.sql", "undo.sql", "sql//x.sql",
                                  "sql\\x.sql"])
def test_write_refuses_bad_paths(path):
    with pytest.raises(ValueError):
        write_bundle({"steps": []}, {path: b"x"})


def test_write_refuses_a_plan_naming_a_missing_file():
    with pytest.raises(ValueError, match="sql/undo/3__email.sql"):
        write_bundle(PLAN, {"sql/repeatable/views.sql": REP})


# ------------------------------------------------------------------ hostile archives


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return gzip.compress(raw.getvalue())


def entries(files: dict[str, bytes], plan: object = PLAN, sums: str | None = None,
            extra: list[tuple[tarfile.TarInfo, bytes | None]] = (), skip: tuple = ()):
    plan_bytes = plan if isinstance(plan, bytes) else json.dumps(plan).encode()
    all_files = {"plan.json": plan_bytes, **files}
    if sums is None:
        sums = "".join(f"{sha(d)}  {p}\n" for p, d in sorted(all_files.items()))
    all_files = {"SHA256SUMS": sums.encode(), **all_files}
    members = [(tarfile.TarInfo(p), d) for p, d in all_files.items() if p not in skip]
    return tar_gz(members + list(extra))


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def lying_header() -> bytes:
    raw = bytearray(gzip.decompress(write_bundle(PLAN, FILES)))
    # the first member (SHA256SUMS): claim it is larger than it is
    size_field = slice(124, 136)
    raw[size_field] = b"%011o\x00" % (len(raw) * 4)
    checksum = sum(raw[:148]) + 8 * 32 + sum(raw[156:512])
    raw[148:156] = b"%06o\x00 " % checksum
    return gzip.compress(bytes(raw))


HOSTILE = {
    "absolute-path": (lambda: entries(FILES, extra=[(tarfile.TarInfo("/etc/x"), b"x")]),
                      "absolute path"),
    "dotdot": (lambda: entries(FILES, extra=[(tarfile.TarInfo("../x"), b"x")]), "escapes"),
    "nested-dotdot": (lambda: entries(FILES, extra=[(tarfile.TarInfo("sql/../../x"), b"x")]),
                      "escapes"),
    "symlink": (lambda: entries(FILES, extra=[special("sql/l", tarfile.SYMTYPE, "/etc/passwd")]),
                "regular files"),
    "hardlink": (lambda: entries(FILES, extra=[special("sql/h", tarfile.LNKTYPE, "plan.json")]),
                 "regular files"),
    "char-device": (lambda: entries(FILES, extra=[special("sql/d", tarfile.CHRTYPE)]),
                    "regular files"),
    "fifo": (lambda: entries(FILES, extra=[special("sql/f", tarfile.FIFOTYPE)]), "regular files"),
    "directory": (lambda: entries(FILES, extra=[special("sql/", tarfile.DIRTYPE)]),
                  "regular files"),
    "duplicate": (lambda: entries(FILES, extra=[(tarfile.TarInfo("sql/undo/3__email.sql"),
                                                 UNDO)]), "duplicate"),
    "unlisted": (lambda: entries(FILES, sums="".join(
        f"{sha(d)}  {p}\n" for p, d in sorted({"plan.json": json.dumps(PLAN).encode(),
                                               "sql/undo/3__email.sql": UNDO}.items()))),
        "not listed"),
    "listed-missing": (lambda: entries(FILES, sums="".join(
        f"{sha(d)}  {p}\n" for p, d in sorted({"plan.json": json.dumps(PLAN).encode(),
                                               **FILES, "sql/x.sql": b"x"}.items()))),
        "lacks"),
    "tampered": (lambda: entries({**FILES, "sql/undo/3__email.sql": b"DROP DATABASE shop;\n"},
                                 sums="".join(f"{sha(d)}  {p}\n" for p, d in sorted(
                                     {"plan.json": json.dumps(PLAN).encode(),
                                      **FILES}.items()))), "checksum mismatch"),
    "malformed-sums": (lambda: entries(FILES, sums="not a sums line\n"), "malformed"),
    "no-plan": (lambda: entries(FILES, skip=("plan.json",), sums="".join(
        f"{sha(d)}  {p}\n" for p, d in sorted(FILES.items()))), "plan.json is missing"),
    "no-sums": (lambda: entries(FILES, skip=("SHA256SUMS",)), "SHA256SUMS is missing"),
    "plan-not-json": (lambda: entries(FILES, plan=b"{nope"), "not JSON"),
    "plan-a-list": (lambda: entries(FILES, plan=[1, 2]), "not a JSON object"),
    "plan-names-missing-file": (lambda: entries({"sql/repeatable/views.sql": REP}),
                                "references a file"),
    "plan-sha-differs": (lambda: entries(FILES, plan={"steps": [
        {"path": "sql/undo/3__email.sql", "sha256": sha(b"other")}]}), "differs"),
    "not-gzip": (lambda: b"PK\x03\x04 this is a zip", "not a gzip"),
    "truncated": (lambda: write_bundle(PLAN, FILES)[:-40], "truncated"),
    "lying-header": (lying_header, "tar archive"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused(case):
    make, needle = HOSTILE[case]
    with pytest.raises(BundleError) as e:
        read_bundle(make(), "evil.tgz")
    assert e.value.exit_code == 3
    assert "bundle evil.tgz" in str(e.value)
    assert needle in str(e.value), str(e.value)


@pytest.mark.parametrize(("limit", "value", "needle"), [
    ("MAX_ENTRIES", 3, "more than 3 entries"),
    ("MAX_FILE_BYTES", 20, "byte limit"),
    ("MAX_COMPRESSED_BYTES", 100, "byte limit"),
])
def test_limits(monkeypatch, limit, value, needle):
    monkeypatch.setattr(B, limit, value)
    with pytest.raises(BundleError, match=needle):
        read_bundle(entries(FILES), "big.tgz")


def test_gzip_bomb_stops_early(monkeypatch):
    monkeypatch.setattr(B, "MAX_TOTAL_BYTES", 1 << 20)
    monkeypatch.setattr(B, "MAX_ENTRIES", 4)
    monkeypatch.setattr(B, "MAX_FILE_BYTES", 64 << 20)
    bomb = tar_gz([(tarfile.TarInfo("sql/zeros.sql"), bytes(40 << 20))])
    assert len(bomb) < 100_000
    with pytest.raises(BundleError, match="exceed"):
        read_bundle(bomb, "bomb.tgz")
