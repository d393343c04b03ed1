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
from pipeline.bundle import BundleError, read_bundle, referenced_files, verify_bundle, write_bundle

UNDO = b"ALTER TABLE customers DROP COLUMN email;\n"
REP = b"CREATE OR REPLACE VIEW v AS SELECT 1;\n"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


PLAN = {
    "schema": "dbroll.plan/v1",
    "steps": [
        {"action": "undo", "path": "sql/undo/3__email.sql", "sha256": sha(UNDO)},
        {"action": "repeatable", "path": "sql/repeatable/views.sql", "sha256": sha(REP)},
    ],
}
FILES = {"sql/undo/3__email.sql": UNDO, "sql/repeatable/views.sql": REP}
BIG = {**FILES, "sql/big.sql": b"-- " + b"x" * 2000 + b"\n"}


def names_of(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


# ------------------------------------------------------------------ writing and round trip


def test_round_trip_and_determinism(tmp_path):
    data = write_bundle(PLAN, FILES)
    b = read_bundle(data, "rb.tgz")
    assert b.plan == PLAN and b.files == FILES
    assert b.sha256 == sha(data) == B.bundle_sha256(data)
    assert b.source == "rb.tgz"
    assert write_bundle(PLAN, FILES) == data
    assert write_bundle(PLAN, dict(reversed(list(FILES.items())))) == data
    assert verify_bundle(data, "rb.tgz") == b
    # gzip header: no FNAME/FEXTRA/FCOMMENT flags, mtime 0
    assert data[:4] == b"\x1f\x8b\x08\x00" and data[4:8] == b"\x00\x00\x00\x00"
    assert (
        names_of(data)
        == sorted(names_of(data))
        == [
            "SHA256SUMS",
            "plan.json",
            "sql/repeatable/views.sql",
            "sql/undo/3__email.sql",
        ]
    )
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644)
        plan_bytes = tar.extractfile("plan.json").read()
    assert (
        plan_bytes
        == (json.dumps(PLAN, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    )
    # coreutils can check it on a copy extracted after verifying
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp_path, filter="data")
    proc = subprocess.run(
        ["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": OK") == 3
    # and it notices tampering, so the check above means something
    (tmp_path / "sql/undo/3__email.sql").write_bytes(b"DROP DATABASE shop;\n")
    proc = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True)
    assert proc.returncode != 0


def test_long_and_non_ascii_names_round_trip():
    files = {"sql/up/" + "é" * 120 + ".sql": b"x", "sql/" + "/".join(["d" * 60] * 5) + ".sql": b"y"}
    plan = {"steps": [{"path": p, "sha256": sha(d)} for p, d in files.items()]}
    data = write_bundle(plan, files)
    assert data == write_bundle(plan, dict(reversed(list(files.items()))))
    assert read_bundle(data).files == files


def tarfile_bytes(entries: dict[str, bytes]) -> bytes:
    """What TarFile itself writes for the entries, headers zeroed as write_bundle zeroes them."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for name in sorted(entries):
            info = tarfile.TarInfo(name)
            info.size = len(entries[name])
            info.mtime, info.mode, info.uid, info.gid = 0, 0o644, 0, 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(entries[name]))
    return raw.getvalue()


@pytest.mark.parametrize(
    "entries",
    [
        {},
        {"plan.json": b"{}\n"},
        {"sql/empty.sql": b""},
        {"sql/one-block.sql": b"x" * 512, "sql/over.sql": b"y" * 513},
        {"sql/" + "é" * 120 + ".sql": b"long non-ASCII name: a PAX header"},
        {"sql/" + "/".join(["d" * 60] * 5) + ".sql": b"long ASCII name", "a": b"1"},
        {f"sql/{i}.sql": b"z" * (i * 37) for i in range(40)},  # ends off a 10240-byte record
        {"sql/x.sql": b"q" * 9216},  # one 512-byte block short of a record: two end blocks
    ],
)
def test_the_archive_is_byte_for_byte_what_tarfile_writes(entries):
    assert B._tar(entries) == tarfile_bytes(entries)


def test_the_bundle_is_compressed_tar_and_plan_json_in_its_layout():
    data = write_bundle(PLAN, FILES)
    entries = {"plan.json": (json.dumps(PLAN, sort_keys=True, indent=2) + "\n").encode(), **FILES}
    entries["SHA256SUMS"] = "".join(f"{sha(entries[p])}  {p}\n" for p in sorted(entries)).encode()
    assert gzip.decompress(data) == tarfile_bytes(entries)


def test_a_different_plan_or_file_is_a_different_bundle():
    base = sha(write_bundle(PLAN, FILES))
    assert sha(write_bundle({**PLAN, "strategy": "undo"}, FILES)) != base
    other = {**FILES, "sql/repeatable/views.sql": REP + b"\n"}
    assert sha(write_bundle({"steps": []}, other)) != sha(write_bundle({"steps": []}, FILES))


def test_referenced_files_walks_dicts_and_lists():
    plan = {
        "path": "sql/a.sql",
        "x": [{"y": {"path": "sql/b.sql", "sha256": "ab"}}],
        "other": {"path": "migrations/V1.sql"},
        "n": [[{"path": 3}]],
    }
    assert sorted(referenced_files(plan)) == [("sql/a.sql", None), ("sql/b.sql", "ab")]
    deep: object = {"path": "sql/deep.sql"}
    for _ in range(5000):
        deep = [deep]
    assert list(referenced_files({"d": deep})) == [("sql/deep.sql", None)]


@pytest.mark.parametrize(
    "path",
    [
        "/abs.sql",
        "sql/../x.sql",
        "../x.sql",
        "undo.sql",
        "sql//x.sql",
        "sql/./x.sql",
        "./sql/x.sql",
        "sql/",
        "sql\\x.sql",
        "sql/x\x00.sql",
        "sql/x\n.sql",
        "",
    ],
)
def test_write_refuses_bad_paths(path):
    with pytest.raises(BundleError) as e:
        write_bundle({"steps": []}, {path: b"x"})
    assert_write_refusal(e.value, repr(path))


def assert_write_refusal(err: BundleError, entry: str) -> None:
    assert err.exit_code == 3
    assert isinstance(err, ValueError)  # a caller bug, for callers that treat it as one
    assert err.message.startswith("bundle <new bundle>: "), err.message
    assert err.message.endswith(f" ({entry})"), err.message


def test_write_refuses_a_file_that_is_also_a_folder():
    with pytest.raises(BundleError, match="file and a folder") as e:
        write_bundle({}, {"sql/a": b"x", "sql/a/b.sql": b"y"})
    assert_write_refusal(e.value, "sql/a")


def test_write_refuses_text_content():
    with pytest.raises(BundleError, match="bytes") as e:
        write_bundle({}, {"sql/a.sql": "SELECT 1"})
    assert_write_refusal(e.value, "sql/a.sql")


def test_write_refuses_a_plan_that_is_not_a_dict():
    with pytest.raises(BundleError, match="dict") as e:
        write_bundle([PLAN], FILES)
    assert_write_refusal(e.value, "plan.json")


def test_write_refuses_a_plan_naming_a_missing_file():
    with pytest.raises(BundleError, match="references") as e:
        write_bundle(PLAN, {"sql/repeatable/views.sql": REP})
    assert_write_refusal(e.value, "sql/undo/3__email.sql")


def test_write_refuses_a_file_that_differs_from_the_plan_sha256():
    with pytest.raises(BundleError, match="differs") as e:
        write_bundle(PLAN, {**FILES, "sql/repeatable/views.sql": REP + b"\n"})
    assert_write_refusal(e.value, "sql/repeatable/views.sql")


@pytest.mark.parametrize(
    ("limit", "value", "needle", "entry"),
    [
        ("MAX_ENTRIES", 3, "more than 3 entries", "<archive>"),
        ("MAX_FILE_BYTES", 1000, "1000-byte limit", "sql/big.sql"),
        ("MAX_TOTAL_BYTES", 1500, "exceed 1500 bytes in all", "<archive>"),
        ("MAX_COMPRESSED_BYTES", 100, "100-byte limit", "<archive>"),
    ],
)
def test_write_refuses_what_read_would_refuse(monkeypatch, limit, value, needle, entry):
    write_bundle(PLAN, BIG)
    monkeypatch.setattr(B, limit, value)
    with pytest.raises(BundleError, match=needle) as e:
        write_bundle(PLAN, BIG)
    assert_write_refusal(e.value, entry)
    # a plan too large for one bundle is no bug: the hint says how to roll back in steps,
    # or, for one script over the limit, what to do with that script
    if limit == "MAX_FILE_BYTES":
        assert "a script this large cannot travel in a bundle" in e.value.hint
    else:
        assert "too large for one bundle" in e.value.hint and "intermediate image" in e.value.hint
        assert f"({len(PLAN['steps'])} steps)" in e.value.hint
    assert "dbroll bug" not in e.value.hint


def test_a_rollback_of_10k_migrations_fits_in_one_bundle_and_reads_back():
    # the plan sizes `make bench` times must also package: 10k undo scripts + plan.json
    n = 10_000
    files = {f"sql/undo/{i}__t{i}.sql": f"DROP TABLE t{i};\n".encode() for i in range(1, n + 1)}
    plan = {
        "steps": [
            {
                "action": "undo",
                "version": str(i),
                "path": p,
                "sha256": hashlib.sha256(d).hexdigest(),
            }
            for i, (p, d) in enumerate(files.items(), start=1)
        ]
    }
    bundle = read_bundle(write_bundle(plan, files))
    assert len(bundle.files) == n and bundle.plan == plan


# ------------------------------------------------------------------ hostile archives


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt=tarfile.GNU_FORMAT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return gzip.compress(raw.getvalue())


def sums_of(files: dict[str, bytes]) -> str:
    return "".join(f"{sha(d)}  {p}\n" for p, d in sorted(files.items()))


def entries(
    files: dict[str, bytes] = FILES,
    plan: object = PLAN,
    sums: str | None = None,
    extra: list[tuple[tarfile.TarInfo, bytes | None]] = (),
    skip: tuple = (),
    fmt: int = tarfile.GNU_FORMAT,
) -> bytes:
    """A hand-built archive: SHA256SUMS (correct unless given), plan.json, files, extra."""
    plan_bytes = plan if isinstance(plan, bytes) else json.dumps(plan).encode()
    all_files = {"plan.json": plan_bytes, **files}
    if sums is None:
        sums = sums_of(all_files)
    all_files = {"SHA256SUMS": sums.encode(), **all_files}
    members = [(tarfile.TarInfo(p), d) for p, d in all_files.items() if p not in skip]
    return tar_gz(members + list(extra), fmt)


def plain(name: str, data: bytes = b"x") -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(tarfile.TarInfo(name), data)]


def special(name: str, kind: bytes, linkname: str = "") -> list[tuple[tarfile.TarInfo, None]]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return [(info, None)]


PLAN_BYTES = json.dumps(PLAN).encode()


def patched_size(new_size) -> bytes:
    """A valid bundle whose first member's (SHA256SUMS) tar header states another size."""
    raw = bytearray(gzip.decompress(write_bundle(PLAN, FILES)))
    assert raw[:10] == b"SHA256SUMS"
    raw[124:136] = b"%011o\x00" % new_size(len(raw))
    checksum = sum(raw[:148]) + 8 * 32 + sum(raw[156:512])
    raw[148:156] = b"%06o\x00 " % checksum
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tar:
        assert tar.next().size == new_size(len(raw))
    return gzip.compress(bytes(raw))


def bad_name(raw_name: bytes) -> bytes:
    """A valid bundle whose first member's name field is overwritten with raw bytes."""
    raw = bytearray(gzip.decompress(write_bundle(PLAN, FILES)))
    raw[0:100] = raw_name.ljust(100, b"\x00")
    checksum = sum(raw[:148]) + 8 * 32 + sum(raw[156:512])
    raw[148:156] = b"%06o\x00 " % checksum
    return gzip.compress(bytes(raw))


def hidden_after_last_member() -> bytes:
    """A valid bundle with a garbage block, then one more member, after the last member:
    tarfile stops silently at the garbage, so only the reader's own check sees it."""
    raw = gzip.decompress(write_bundle(PLAN, FILES))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        last = tar.getmembers()[-1]
    end = last.offset_data + -(-last.size // 512) * 512
    assert raw[end:].strip(b"\x00") == b""
    smuggled = gzip.decompress(tar_gz([(tarfile.TarInfo("sql/evil.sql"), b"DROP DATABASE x;")]))
    return gzip.compress(raw[:end] + b"\xff" * 512 + smuggled)


def pax_sparse() -> list[tuple[tarfile.TarInfo, bytes]]:
    """A PAX "regular file" whose sparse map inflates 3 stored bytes to 100 kB on reading."""
    info = tarfile.TarInfo("sql/sparse.sql")
    info.pax_headers = {
        "GNU.sparse.major": "0",
        "GNU.sparse.minor": "1",
        "GNU.sparse.map": "0,3",
        "GNU.sparse.realsize": "100000",
    }
    return [(info, b"abc")]


def deep_json() -> bytes:
    return b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"


# case -> (archive maker, words the message must contain, entry the message must end with)
HOSTILE = {
    "absolute-path": (lambda: entries(extra=plain("/etc/x")), "absolute path", "/etc/x"),
    "dotdot": (lambda: entries(extra=plain("../x")), "escapes", "../x"),
    "nested-dotdot": (lambda: entries(extra=plain("sql/../../x")), "escapes", "sql/../../x"),
    "dot-prefix": (lambda: entries(extra=plain("./sql/x.sql")), "not normalized", "./sql/x.sql"),
    "double-slash": (lambda: entries(extra=plain("sql//x.sql")), "not normalized", "sql//x.sql"),
    "trailing-slash": (lambda: entries(extra=plain("sql/x/")), "not normalized", "sql/x/"),
    "backslash": (
        lambda: entries(extra=plain("sql\\..\\..\\x")),
        "bad characters",
        "sql\\..\\..\\x",
    ),
    "newline": (lambda: entries(extra=plain("sql/a\nb.sql")), "bad characters", "sql/a\nb.sql"),
    "not-utf8-name": (lambda: bad_name(b"sql/\xff.sql"), "not UTF-8", "<archive>"),
    "outside-sql": (lambda: entries(extra=plain("run.sh")), "unexpected entry", "run.sh"),
    "symlink": (
        lambda: entries(extra=special("sql/l", tarfile.SYMTYPE, "/etc/passwd")),
        "regular files",
        "sql/l",
    ),
    "hardlink": (
        lambda: entries(extra=special("sql/h", tarfile.LNKTYPE, "plan.json")),
        "regular files",
        "sql/h",
    ),
    "char-device": (
        lambda: entries(extra=special("sql/d", tarfile.CHRTYPE)),
        "regular files",
        "sql/d",
    ),
    "block-device": (
        lambda: entries(extra=special("sql/b", tarfile.BLKTYPE)),
        "regular files",
        "sql/b",
    ),
    "gnu-sparse": (
        lambda: entries(extra=special("sql/s", tarfile.GNUTYPE_SPARSE)),
        "regular files",
        "sql/s",
    ),
    "pax-sparse": (
        lambda: entries(extra=pax_sparse(), fmt=tarfile.PAX_FORMAT),
        "regular files",
        "sql/sparse.sql",
    ),
    "contiguous": (
        lambda: entries(extra=special("sql/c", tarfile.CONTTYPE)),
        "regular files",
        "sql/c",
    ),
    "file-and-folder": (
        lambda: entries({**FILES, "sql/a": b"x", "sql/a/b.sql": b"y"}),
        "both a file and a folder",
        "sql/a",
    ),
    "plan-duplicate-key": (
        lambda: entries(plan=b'{"steps": [], "steps": [{"path": "sql/x.sql"}]}'),
        "'steps' twice",
        "plan.json",
    ),
    "fifo": (lambda: entries(extra=special("sql/f", tarfile.FIFOTYPE)), "regular files", "sql/f"),
    "directory": (lambda: entries(extra=special("sql", tarfile.DIRTYPE)), "regular files", "sql"),
    "duplicate": (
        lambda: entries(extra=plain("sql/undo/3__email.sql", UNDO)),
        "duplicate",
        "sql/undo/3__email.sql",
    ),
    "duplicate-plan": (
        lambda: entries(extra=plain("plan.json", PLAN_BYTES)),
        "duplicate",
        "plan.json",
    ),
    "unlisted": (
        lambda: entries(sums=sums_of({"plan.json": PLAN_BYTES, "sql/undo/3__email.sql": UNDO})),
        "not listed",
        "sql/repeatable/views.sql",
    ),
    "listed-missing": (
        lambda: entries(sums=sums_of({"plan.json": PLAN_BYTES, **FILES, "sql/x.sql": b"x"})),
        "lacks",
        "sql/x.sql",
    ),
    "tampered": (
        lambda: entries(
            {**FILES, "sql/undo/3__email.sql": b"DROP DATABASE shop;\n"},
            sums=sums_of({"plan.json": PLAN_BYTES, **FILES}),
        ),
        "checksum mismatch",
        "sql/undo/3__email.sql",
    ),
    "tampered-plan": (
        lambda: entries(
            plan={**PLAN, "strategy": "x"}, sums=sums_of({"plan.json": PLAN_BYTES, **FILES})
        ),
        "checksum mismatch",
        "plan.json",
    ),
    "malformed-sums": (lambda: entries(sums="not a sums line\n"), "malformed", "SHA256SUMS"),
    "sums-uppercase": (
        lambda: entries(sums=sums_of({"plan.json": PLAN_BYTES, **FILES}).upper()),
        "malformed",
        "SHA256SUMS",
    ),
    "sums-one-space": (
        lambda: entries(sums=sums_of({"plan.json": PLAN_BYTES, **FILES}).replace("  ", " ")),
        "malformed",
        "SHA256SUMS",
    ),
    "sums-duplicate-line": (
        lambda: entries(sums=sums_of({"plan.json": PLAN_BYTES, **FILES}) * 2),
        "malformed",
        "SHA256SUMS",
    ),
    "no-plan": (
        lambda: entries(skip=("plan.json",), sums=sums_of(FILES)),
        "plan.json is missing",
        "plan.json",
    ),
    "no-sums": (lambda: entries(skip=("SHA256SUMS",)), "SHA256SUMS is missing", "SHA256SUMS"),
    "plan-not-json": (lambda: entries(plan=b"{nope"), "not JSON", "plan.json"),
    "plan-not-utf8": (lambda: entries(plan=b'{"a": "\xff"}'), "not JSON", "plan.json"),
    "plan-too-deep": (lambda: entries(plan=deep_json()), "not JSON", "plan.json"),
    "plan-a-list": (lambda: entries(plan=[1, 2]), "not a JSON object", "plan.json"),
    "plan-names-missing-file": (
        lambda: entries({"sql/repeatable/views.sql": REP}),
        "references a file",
        "sql/undo/3__email.sql",
    ),
    "plan-sha-differs": (
        lambda: entries(
            plan={"steps": [{"path": "sql/undo/3__email.sql", "sha256": sha(b"other")}]}
        ),
        "differs",
        "sql/undo/3__email.sql",
    ),
    "plan-sha-not-a-string": (
        lambda: entries(plan={"steps": [{"path": "sql/undo/3__email.sql", "sha256": 0}]}),
        "differs",
        "sql/undo/3__email.sql",
    ),
    "not-gzip": (lambda: b"PK\x03\x04 this is a zip", "not a gzip", "<archive>"),
    "empty": (lambda: b"", "not a gzip", "<archive>"),
    "gzip-not-tar": (
        lambda: gzip.compress(b"hello, this is not a tar archive\n" * 40),
        "tar archive",
        "<archive>",
    ),
    "corrupt-deflate": (
        lambda: write_bundle(PLAN, FILES)[:20] + b"\xff" * 200,
        "gzip archive or corrupt",
        "<archive>",
    ),
    # the entry being read when the input ran out (tarfile reads ahead, so the last one)
    "truncated": (lambda: write_bundle(PLAN, FILES)[:-40], "truncated", "sql/undo/3__email.sql"),
    "truncated-gzip-trailer": (
        lambda: write_bundle(PLAN, FILES)[:-4],
        "truncated",
        "after sql/undo/3__email.sql",
    ),
    "truncated-mid-member": (lambda: write_bundle(PLAN, FILES)[:200], "truncated", "SHA256SUMS"),
    "trailing-data": (
        lambda: write_bundle(PLAN, FILES) + b"junk",
        "after the end",
        "after sql/undo/3__email.sql",
    ),
    "second-gzip-member": (
        lambda: write_bundle(PLAN, FILES) + entries(extra=plain("sql/z")),
        "after the end",
        "after sql/undo/3__email.sql",
    ),
    "header-claims-more": (lambda: patched_size(lambda n: n * 4), "tar archive", "SHA256SUMS"),
    "header-claims-less": (lambda: patched_size(lambda n: 10), "malformed", "SHA256SUMS"),
    "hidden-after-last-member": (
        hidden_after_last_member,
        "after the last entry",
        "after sql/undo/3__email.sql",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused(case):
    make, needle, entry = HOSTILE[case]
    with pytest.raises(BundleError) as e:
        read_bundle(make(), "s3://b/evil.tgz")
    msg = e.value.message
    assert e.value.exit_code == 3
    assert msg.startswith("bundle s3://b/evil.tgz: "), msg
    assert needle in msg, msg
    assert msg.endswith(f" ({entry})"), msg
    assert "dbroll plan --out" in (e.value.hint or "")
    with pytest.raises(BundleError):
        verify_bundle(make(), "again")


def test_the_valid_baseline_of_the_hand_built_archives_is_accepted():
    # so each hostile case above fails for its own defect, not for the way it was built
    b = read_bundle(entries(), "ok.tgz")
    assert b.files == FILES and b.plan == PLAN


@pytest.mark.parametrize(
    ("limit", "value", "needle", "entry"),
    [
        ("MAX_ENTRIES", 3, "more than 3 entries", "sql/repeatable/views.sql"),
        ("MAX_FILE_BYTES", 1000, "1000-byte limit", "sql/big.sql"),
        ("MAX_TOTAL_BYTES", 1500, "exceed 1500 bytes in all", "sql/big.sql"),
        ("MAX_COMPRESSED_BYTES", 100, "100-byte limit", "<archive>"),
    ],
)
def test_limits(monkeypatch, limit, value, needle, entry):
    data = entries(BIG)
    assert read_bundle(data).files == BIG
    monkeypatch.setattr(B, limit, value)
    with pytest.raises(BundleError) as e:
        read_bundle(data, "big.tgz")
    assert e.value.exit_code == 3
    assert "bundle big.tgz" in e.value.message and needle in e.value.message, e.value.message
    assert e.value.message.endswith(f" ({entry})"), e.value.message


def test_a_header_that_lies_cannot_let_more_than_the_limit_through(monkeypatch):
    # SHA256SUMS header claims 1 MiB: refused on the claim, before any of it is read
    monkeypatch.setattr(B, "MAX_FILE_BYTES", 4096)
    with pytest.raises(BundleError, match=r"claims 1048576 bytes, over the 4096-byte limit") as e:
        read_bundle(patched_size(lambda n: 1 << 20), "lie.tgz")
    assert e.value.message.endswith(" (SHA256SUMS)"), e.value.message


def test_entries_are_read_with_a_bounded_read(monkeypatch):
    # a member reader that would never stop (what a lying header could cause if tarfile
    # trusted it): the reader asks for at most the limit plus one byte, and refuses that
    monkeypatch.setattr(B, "MAX_FILE_BYTES", 4096)
    asked = []

    class Endless:
        def read(self, size=-1):
            asked.append(size)
            assert size is not None and size >= 0, "unbounded read"
            return b"x" * size

    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda self, member: Endless())
    with pytest.raises(BundleError, match="holds more than the 4096-byte limit") as e:
        read_bundle(write_bundle(PLAN, FILES), "endless.tgz")
    assert e.value.message.endswith(" (SHA256SUMS)"), e.value.message
    assert asked == [4097]


def test_gzip_bomb_stops_early(monkeypatch):
    readers = []

    class Spy(B._BoundedGunzip):
        def __init__(self, *args):
            super().__init__(*args)
            readers.append(self)

    monkeypatch.setattr(B, "_BoundedGunzip", Spy)
    monkeypatch.setattr(B, "MAX_TOTAL_BYTES", 1 << 20)
    monkeypatch.setattr(B, "MAX_ENTRIES", 4)
    monkeypatch.setattr(B, "MAX_FILE_BYTES", 64 << 20)
    bomb = tar_gz([(tarfile.TarInfo("sql/zeros.sql"), bytes(20 << 20))])
    assert len(bomb) < 100_000
    with pytest.raises(BundleError, match="uncompressed size exceeds") as e:
        read_bundle(bomb, "bomb.tgz")
    assert e.value.exit_code == 3 and "bundle bomb.tgz" in e.value.message
    assert e.value.message.endswith(" (sql/zeros.sql)"), e.value.message
    # it stopped near the limit instead of inflating all 20 MiB
    assert len(readers) == 1 and readers[0].produced < 2 << 20


def test_many_small_entries_within_limits_are_read():
    files = {f"sql/up/{i}__m.sql": b"SELECT %d;\n" % i for i in range(300)}
    plan = {"steps": [{"path": p, "sha256": sha(d)} for p, d in files.items()]}
    assert read_bundle(write_bundle(plan, files)).files == files


def test_headers_that_would_be_read_whole_into_memory_are_refused(monkeypatch):
    monkeypatch.setattr(B, "MAX_HEADER_BYTES", 16 * 1024)
    fat = tarfile.TarInfo("sql/fat.sql")
    fat.pax_headers = {"comment": "x" * (256 * 1024)}
    sums = sums_of({"plan.json": PLAN_BYTES, **FILES, "sql/fat.sql": b"x"})
    data = entries(sums=sums, extra=[(fat, b"x")], fmt=tarfile.PAX_FORMAT)
    with pytest.raises(BundleError, match="headers exceed 16384 bytes") as e:
        read_bundle(data, "fat.tgz")
    assert e.value.message.endswith(" (after sql/repeatable/views.sql)"), e.value.message
    # the same archive with a small comment is fine, and so are long names
    fat.pax_headers = {"comment": "x" * 1024}
    thin = entries(sums=sums, extra=[(fat, b"x")], fmt=tarfile.PAX_FORMAT)
    assert read_bundle(thin, "thin.tgz").files == {**FILES, "sql/fat.sql": b"x"}


def test_old_style_regular_files_are_accepted():
    members = []
    for name, data in {
        "SHA256SUMS": sums_of({"plan.json": PLAN_BYTES, **FILES}).encode(),
        "plan.json": PLAN_BYTES,
        **FILES,
    }.items():
        info = tarfile.TarInfo(name)
        info.type = tarfile.AREGTYPE
        members.append((info, data))
    assert read_bundle(tar_gz(members, tarfile.USTAR_FORMAT)).files == FILES


def test_a_member_reader_that_comes_up_short_is_refused(monkeypatch):
    # tarfile raises on short data itself; the reader does not rely on that
    class Short:
        def read(self, size=-1):
            return b"short"

    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda self, member: Short())
    with pytest.raises(BundleError, match="entry is truncated") as e:
        read_bundle(write_bundle(PLAN, FILES), "short.tgz")
    assert e.value.message.endswith(" (SHA256SUMS)"), e.value.message
