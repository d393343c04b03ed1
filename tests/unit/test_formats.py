"""Reading Flyway, dbmate and golang-migrate folders, and every way a folder can be bad."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from pipeline.errors import MigrationFileError
from pipeline.migrations.formats import detect_format, load_migration_set
from pipeline.migrations.model import MigrationSet, Version

V = Version.parse


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (folder / name).write_bytes(data)
    return folder


def sha(data: str | bytes) -> str:
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode("utf-8")).hexdigest()


def summary(s: MigrationSet) -> list[tuple[str, str, bool, bool]]:
    return [
        (str(m.version), m.description, m.undo is not None, m.transaction) for m in s.migrations
    ]


# ---------------------------------------------------------------------------- reading

FLYWAY_FILES: dict[str, str | bytes] = {
    "V1__create_customers.sql": "CREATE TABLE customers (id INT);\n",
    "U1__create_customers.sql": "DROP TABLE customers;\n",
    "V1.1__add_index.sql": "CREATE INDEX i ON customers (id);\n",
    "V1.10__later.sql": "SELECT 110;\n",
    "V1.9__earlier.sql": "SELECT 19;\n",
    "U1.9__earlier.sql": "SELECT -19;\n",
    "V2_1__underscore_version.sql": "SELECT 21;\n",
    "V3__x.sql": "/*!40101 SET NAMES utf8 */;\n",
    "R__views.sql": "CREATE OR REPLACE VIEW v AS SELECT 1;\n",
    "R__all_procs.sql": "SELECT 'procs';\n",
    "README.md": "docs",
    "README.sql": "not a migration",
    ".hidden.sql": "garbage",
    "notes.txt": "garbage",
    "schema.json": "{}",
}

DBMATE_FILES: dict[str, str | bytes] = {
    "20240101120000_create_customers.sql": (
        "-- migrate:up\nCREATE TABLE customers (id INT);\n\n"
        "-- migrate:down\nDROP TABLE customers;\n"
    ),
    "20240102120000_backfill.sql": (
        "-- migrate:up transaction:false\nUPDATE customers SET id = id;\n"
        "-- migrate:down\n-- cannot be undone\n"
    ),
    "20240103120000_no_down.sql": "-- migrate:up\nSELECT 1;\n",
    "20240104120000_crlf.sql": "-- migrate:up\r\nSELECT 4;\r\n-- migrate:down  \r\nSELECT -4;\r\n",
    "20240105120000_down_notx.sql": (
        "-- a leading comment\n\n--migrate:up\nSELECT 5;\n  -- migrate:down transaction:false\n"
        "SELECT -5;"
    ),
    "README": "x",
    ".DS_Store": b"\x00\xff",
}

GOLANG_FILES: dict[str, str | bytes] = {
    "1_create_customers.up.sql": "CREATE TABLE customers (id INT);\n",
    "1_create_customers.down.sql": "DROP TABLE customers;\n",
    "2_add_email.up.sql": "ALTER TABLE customers ADD email TEXT;\n",
    "10_tenth.up.sql": "SELECT 10;\n",
    "10_tenth.down.sql": "SELECT -10;\n",
    "readme.md": "x",
}


@pytest.mark.parametrize(
    ("files", "fmt", "expected"),
    [
        (
            FLYWAY_FILES,
            "flyway",
            [
                ("1", "create customers", True, True),
                ("1.1", "add index", False, True),
                ("1.9", "earlier", True, True),
                ("1.10", "later", False, True),
                ("2.1", "underscore version", False, True),
                ("3", "x", False, True),
            ],
        ),
        (
            DBMATE_FILES,
            "dbmate",
            [
                ("20240101120000", "create customers", True, True),
                ("20240102120000", "backfill", False, False),
                ("20240103120000", "no down", False, True),
                ("20240104120000", "crlf", True, True),
                ("20240105120000", "down notx", True, False),
            ],
        ),
        (
            GOLANG_FILES,
            "golang-migrate",
            [
                ("1", "create customers", True, True),
                ("2", "add email", False, True),
                ("10", "tenth", True, True),
            ],
        ),
    ],
    ids=["flyway", "dbmate", "golang-migrate"],
)
def test_load_formats(
    tmp_path: Path, files: dict[str, str | bytes], fmt: str, expected: list[tuple]
) -> None:
    root = write(tmp_path / "m", files)
    s = load_migration_set(root)
    assert s.format == fmt
    assert s.root == str(root)
    assert summary(s) == expected
    assert list(s.versions) == sorted(s.versions)
    assert s.latest == s.versions[-1]
    assert detect_format(os.listdir(root)) == fmt
    for m in s.migrations:
        assert s.get(m.version) is m
        assert "/" not in m.up.path and (root / m.up.path).is_file()


@pytest.mark.parametrize("fmt_files", [FLYWAY_FILES, GOLANG_FILES], ids=["flyway", "golang"])
def test_whole_file_sha256_is_over_raw_bytes(
    tmp_path: Path, fmt_files: dict[str, str | bytes]
) -> None:
    root = write(tmp_path, fmt_files)
    s = load_migration_set(root)
    scripts = [m.up for m in s.migrations] + [m.undo for m in s.migrations if m.undo]
    scripts += [r.script for r in s.repeatables]
    for script in scripts:
        raw = (root / script.path).read_bytes()
        assert script.sha256 == hashlib.sha256(raw).hexdigest()
        assert script.text == raw.decode("utf-8")


def test_flyway_details(tmp_path: Path) -> None:
    s = load_migration_set(write(tmp_path, FLYWAY_FILES))
    m = s.get(V("1"))
    assert m is not None and m.undo is not None
    assert (m.up.path, m.undo.path) == ("V1__create_customers.sql", "U1__create_customers.sql")
    assert m.undo.text == "DROP TABLE customers;\n"
    assert m.version.text == "1"
    assert s.get(V("2_1")) is s.get(V("2.1.0")) is not None
    assert [(r.name, r.description, r.script.path) for r in s.repeatables] == [
        ("all_procs", "all procs", "R__all_procs.sql"),
        ("views", "views", "R__views.sql"),
    ]


def test_dbmate_sections(tmp_path: Path) -> None:
    s = load_migration_set(write(tmp_path, DBMATE_FILES))
    m = s.get(V("20240101120000"))
    assert m is not None and m.undo is not None
    assert m.up.text == "CREATE TABLE customers (id INT);\n\n"
    assert m.undo.text == "DROP TABLE customers;\n"
    assert m.up.path == m.undo.path == "20240101120000_create_customers.sql"
    assert m.up.sha256 == sha(m.up.text)
    assert m.undo.sha256 == sha(m.undo.text)
    assert m.up.sha256 != sha((tmp_path / m.up.path).read_bytes())

    crlf = s.get(V("20240104120000"))
    assert crlf is not None and crlf.undo is not None
    assert crlf.up.text == "SELECT 4;\r\n"
    assert crlf.undo.text == "SELECT -4;\r\n"
    assert crlf.undo.sha256 == sha("SELECT -4;\r\n")

    last = s.get(V("20240105120000"))
    assert last is not None and last.undo is not None
    assert last.up.text == "SELECT 5;\n"
    assert last.undo.text == "SELECT -5;"


@pytest.mark.parametrize(
    ("content", "up_text", "undo_text"),
    [
        ("-- migrate:up\nSELECT 1;\n", "SELECT 1;\n", None),
        ("-- migrate:up\nSELECT 1;", "SELECT 1;", None),
        ("-- migrate:up\nSELECT 1;\n-- migrate:down\n", "SELECT 1;\n", None),
        ("-- migrate:up\nSELECT 1;\n-- migrate:down", "SELECT 1;\n", None),
        ("-- migrate:up\nSELECT 1;\n-- migrate:down\n  \n\t\n", "SELECT 1;\n", None),
        ("-- migrate:up\nSELECT 1;\n-- migrate:down\n/* nothing */ # x\n", "SELECT 1;\n", None),
        ("-- migrate:up\nSELECT 1;\n-- migrate:down\n;\n", "SELECT 1;\n", None),
        (
            "-- migrate:up\nSELECT 1;\n-- migrate:down\n/*!SELECT 2*/\n",
            "SELECT 1;\n",
            "/*!SELECT 2*/\n",
        ),
        ("\ufeff-- migrate:up\nSELECT 1;\n", "SELECT 1;\n", None),
        ("-- migrate:up\n-- migrate:upgrade is not a marker\nX;\n", None, None),
        ("-- migrate:up\n-- migrate:downgrade is not a marker\nX;\n", None, None),
        ("\t--   migrate:up   \nSELECT 1;\n", "SELECT 1;\n", None),
    ],
)
def test_dbmate_section_table(
    tmp_path: Path, content: str, up_text: str | None, undo_text: str | None
) -> None:
    write(tmp_path, {"1_a.sql": content})
    m = load_migration_set(tmp_path).migrations[0]
    if up_text is None:
        up_text = content.split("\n", 1)[1]
    assert m.up.text == up_text
    assert m.up.sha256 == sha(up_text)
    assert (m.undo.text if m.undo else None) == undo_text


@pytest.mark.parametrize(
    ("marker", "transaction"),
    [
        ("-- migrate:up", True),
        ("-- migrate:up transaction:false", False),
        ("-- migrate:up   transaction:false  ", False),
        ("-- migrate:up transaction:FALSE", False),
        ("-- migrate:up transaction:true", True),
        ("-- migrate:up other:thing transaction:false", False),
        ("-- migrate:up other:thing", True),
    ],
)
def test_dbmate_transaction_option(tmp_path: Path, marker: str, transaction: bool) -> None:
    write(tmp_path, {"1_a.sql": f"{marker}\nSELECT 1;\n-- migrate:down\nSELECT 2;\n"})
    assert load_migration_set(tmp_path).migrations[0].transaction is transaction


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("V1__bom.sql", b"\xef\xbb\xbfSELECT 1;\n"),
        ("1_bom.up.sql", b"\xef\xbb\xbfSELECT 1;\n"),
    ],
)
def test_bom_removed_from_text_but_hashed(tmp_path: Path, name: str, content: bytes) -> None:
    write(tmp_path, {name: content})
    m = load_migration_set(tmp_path).migrations[0]
    assert m.up.text == "SELECT 1;\n"
    assert m.up.sha256 == sha(content)


def test_dbmate_bom(tmp_path: Path) -> None:
    write(tmp_path, {"1_bom.sql": b"\xef\xbb\xbf-- migrate:up\nSELECT 1;\n"})
    m = load_migration_set(tmp_path).migrations[0]
    assert m.up.text == "SELECT 1;\n"
    assert m.up.sha256 == sha("SELECT 1;\n")


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"README.md": "x", "README": "x", ".hidden.sql": "x", "notes.txt": "x", "a.py": "x"},
    ],
    ids=["nothing", "only-ignored"],
)
def test_empty_folder(tmp_path: Path, files: dict[str, str | bytes]) -> None:
    root = write(tmp_path / "empty", files)
    (root / "subdir.sql").mkdir()
    (root / "sub").mkdir()
    write(root / "sub", {"V1__nested.sql": "SELECT 1;"})
    s = load_migration_set(root)
    assert (s.format, s.migrations, s.repeatables, s.versions, s.latest) == (
        "empty",
        (),
        (),
        (),
        None,
    )


def test_root_accepts_str_and_pathlike(tmp_path: Path) -> None:
    write(tmp_path, {"V1__a.sql": "SELECT 1;"})
    assert load_migration_set(str(tmp_path)) == load_migration_set(tmp_path)
    assert load_migration_set(str(tmp_path)).root == str(tmp_path)


@pytest.mark.parametrize(
    ("names", "fmt"),
    [
        ([], "empty"),
        (["README.sql", ".x.sql", "a.txt"], "empty"),
        (["V1__a.sql"], "flyway"),
        (["R__a.sql"], "flyway"),
        (["V1__a.up.sql"], "flyway"),
        (["1_init.up.sql"], "golang-migrate"),
        (["1_init.down.sql", "1_init.up.sql"], "golang-migrate"),
        (["1_init.sql"], "dbmate"),
        (["20240101120000_init.sql"], "dbmate"),
        (["1__init.sql"], "dbmate"),
        (iter(["2_b.sql", "1_a.sql"]), "dbmate"),
    ],
)
def test_detect_format(names: list[str], fmt: str) -> None:
    assert detect_format(names) == fmt


# ---------------------------------------------------------------------------- errors


def _assert_error(exc: pytest.ExceptionInfo[MigrationFileError], *names: str) -> None:
    assert isinstance(exc.value, MigrationFileError)
    assert exc.value.exit_code == 2
    for name in names:
        assert name in str(exc.value)
    assert exc.value.hint


BAD_FOLDERS: list[tuple[str, dict[str, str | bytes], tuple[str, ...], str]] = [
    (
        "mixed-flyway-dbmate",
        {"V1__a.sql": "x", "2_b.sql": "-- migrate:up\nx"},
        ("V1__a.sql", "2_b.sql"),
        "mixed",
    ),
    (
        "mixed-golang-dbmate",
        {"1_a.up.sql": "x", "2_b.sql": "-- migrate:up\nx"},
        ("1_a.up.sql", "2_b.sql"),
        "mixed",
    ),
    (
        "mixed-three",
        {"V1__a.sql": "x", "1_a.up.sql": "x", "2_b.sql": "x"},
        ("V1__a.sql", "1_a.up.sql", "2_b.sql"),
        "mixed",
    ),
    (
        "mixed-undo-only",
        {"U1__a.sql": "x", "1_a.down.sql": "x"},
        ("U1__a.sql", "1_a.down.sql"),
        "mixed",
    ),
    (
        "flyway-dup",
        {"V1__a.sql": "x", "V1.0__b.sql": "y"},
        ("V1__a.sql", "V1.0__b.sql"),
        "duplicate",
    ),
    (
        "flyway-dup-underscore",
        {"V2_1__a.sql": "x", "V2.1__b.sql": "y"},
        ("V2_1__a.sql", "V2.1__b.sql"),
        "duplicate",
    ),
    (
        "flyway-dup-undo",
        {"V1__a.sql": "x", "U1__a.sql": "x", "U1.0__b.sql": "y"},
        ("U1__a.sql", "U1.0__b.sql"),
        "duplicate",
    ),
    (
        "flyway-dup-repeatable",
        {"R__a_b.sql": "x", "R__a b.sql": "y"},
        ("R__a_b.sql", "R__a b.sql"),
        "duplicate",
    ),
    (
        "golang-dup",
        {"1_a.up.sql": "x", "01_b.up.sql": "y"},
        ("1_a.up.sql", "01_b.up.sql"),
        "duplicate",
    ),
    (
        "dbmate-dup",
        {"1_a.sql": "-- migrate:up\nx", "001_b.sql": "-- migrate:up\ny"},
        ("1_a.sql", "001_b.sql"),
        "duplicate",
    ),
    ("flyway-orphan-undo", {"V1__a.sql": "x", "U2__b.sql": "y"}, ("U2__b.sql",), "no forward"),
    (
        "golang-orphan-down",
        {"1_a.up.sql": "x", "2_b.down.sql": "y"},
        ("2_b.down.sql",),
        "no forward",
    ),
    ("flyway-single-underscore", {"V1_init.sql": "x"}, ("V1_init.sql",), "invalid Flyway"),
    ("flyway-bad-version", {"Vx__a.sql": "x"}, ("Vx__a.sql",), "invalid Flyway"),
    ("flyway-no-version", {"V__a.sql": "x"}, ("V__a.sql",), "invalid Flyway"),
    ("flyway-no-desc-sep", {"V1.sql": "x"}, ("V1.sql",), "invalid Flyway"),
    ("flyway-undo-bad", {"V1__a.sql": "x", "U1_a.sql": "x"}, ("U1_a.sql",), "invalid Flyway"),
    ("flyway-repeatable-versioned", {"R1__a.sql": "x"}, ("R1__a.sql",), "invalid Flyway"),
    ("flyway-repeatable-no-name", {"R__.sql": "x"}, ("R__.sql",), "invalid Flyway"),
    ("unknown-name", {"schema.sql": "x"}, ("schema.sql",), "does not match"),
    ("unknown-digits-only", {"123.sql": "x"}, ("123.sql",), "does not match"),
    ("unknown-golang-no-underscore", {"1.up.sql": "x"}, ("1.up.sql",), "does not match"),
    ("unknown-lowercase-v", {"v1__a.sql": "x"}, ("v1__a.sql",), "does not match"),
    ("uppercase-ext", {"V1__a.SQL": "x"}, ("V1__a.SQL",), "lowercase"),
    ("flyway-not-utf8", {"V1__a.sql": b"SELECT '\xe9';"}, ("V1__a.sql", "byte offset 8"), "UTF-8"),
    (
        "flyway-undo-not-utf8",
        {"V1__a.sql": "x", "U1__a.sql": b"\xff"},
        ("U1__a.sql", "byte offset 0"),
        "UTF-8",
    ),
    (
        "dbmate-not-utf8",
        {"1_a.sql": b"-- migrate:up\n\xc3("},
        ("1_a.sql", "byte offset 14"),
        "UTF-8",
    ),
    ("golang-not-utf8", {"1_a.up.sql": b"SELECT 1;\x80"}, ("1_a.up.sql", "byte offset 9"), "UTF-8"),
    ("flyway-empty", {"V1__a.sql": ""}, ("V1__a.sql",), "empty"),
    ("flyway-whitespace", {"V1__a.sql": " \n\t\r\n"}, ("V1__a.sql",), "empty"),
    ("flyway-comments", {"V1__a.sql": "-- a\n# b\n/* c\n d */\n;\n"}, ("V1__a.sql",), "empty"),
    (
        "flyway-unclosed-comment",
        {"V1__a.sql": "/* never closed\nSELECT 1;"},
        ("V1__a.sql",),
        "empty",
    ),
    ("flyway-bom-only", {"V1__a.sql": b"\xef\xbb\xbf\n"}, ("V1__a.sql",), "empty"),
    (
        "flyway-empty-undo",
        {"V1__a.sql": "x", "U1__a.sql": "-- todo\n"},
        ("U1__a.sql",),
        "empty undo",
    ),
    ("flyway-empty-repeatable", {"R__a.sql": "\n"}, ("R__a.sql",), "empty"),
    ("golang-empty-up", {"1_a.up.sql": "", "1_a.down.sql": "x"}, ("1_a.up.sql",), "empty"),
    (
        "golang-empty-down",
        {"1_a.up.sql": "x", "1_a.down.sql": "  "},
        ("1_a.down.sql",),
        "empty undo",
    ),
    ("dbmate-no-up", {"1_a.sql": "CREATE TABLE t (id INT);\n"}, ("1_a.sql",), "migrate:up"),
    ("dbmate-only-down", {"1_a.sql": "-- migrate:down\nx\n"}, ("1_a.sql",), "before"),
    (
        "dbmate-down-first",
        {"1_a.sql": "-- migrate:down\nx\n-- migrate:up\ny\n"},
        ("1_a.sql",),
        "before",
    ),
    (
        "dbmate-two-ups",
        {"1_a.sql": "-- migrate:up\nx\n-- migrate:up\ny\n"},
        ("1_a.sql", "line 3"),
        "second",
    ),
    (
        "dbmate-two-downs",
        {"1_a.sql": "-- migrate:up\nx\n-- migrate:down\n-- migrate:down\n"},
        ("1_a.sql", "line 4"),
        "second",
    ),
    ("dbmate-sql-before-up", {"1_a.sql": "SELECT 0;\n-- migrate:up\nx\n"}, ("1_a.sql",), "before"),
    (
        "dbmate-empty-up",
        {"1_a.sql": "-- migrate:up\n-- nothing\n-- migrate:down\nx\n"},
        ("1_a.sql",),
        "empty",
    ),
    ("dbmate-empty-file", {"1_a.sql": ""}, ("1_a.sql",), "migrate:up"),
    (
        "dbmate-bad-tx",
        {"1_a.sql": "-- migrate:up transaction:nope\nx\n"},
        ("1_a.sql", "transaction:nope"),
        "invalid option",
    ),
]


@pytest.mark.parametrize(
    ("files", "names", "phrase"),
    [case[1:] for case in BAD_FOLDERS],
    ids=[case[0] for case in BAD_FOLDERS],
)
def test_bad_folders(
    tmp_path: Path, files: dict[str, str | bytes], names: tuple[str, ...], phrase: str
) -> None:
    write(tmp_path, files)
    with pytest.raises(MigrationFileError) as exc:
        load_migration_set(tmp_path)
    _assert_error(exc, *names)
    assert phrase in exc.value.message
    assert str(tmp_path) in exc.value.path
    # deterministic: the same folder gives the same message
    with pytest.raises(MigrationFileError) as again:
        load_migration_set(tmp_path)
    assert str(again.value) == str(exc.value)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["V1__a.sql", "1_b.sql"], ("V1__a.sql", "1_b.sql", "mixed")),
        (["1_a.up.sql", "2_b.sql"], ("1_a.up.sql", "2_b.sql", "mixed")),
        (["V1_a.sql"], ("V1_a.sql", "invalid Flyway")),
        (["init.sql"], ("init.sql", "does not match")),
    ],
)
def test_detect_format_errors(names: list[str], expected: tuple[str, ...]) -> None:
    with pytest.raises(MigrationFileError) as exc:
        detect_format(names)
    _assert_error(exc, *expected)


def test_bad_name_hint_mentions_patterns(tmp_path: Path) -> None:
    write(tmp_path, {"schema.sql": "x"})
    with pytest.raises(MigrationFileError) as exc:
        load_migration_set(tmp_path)
    hint = exc.value.hint or ""
    for pattern in ("V<version>__<description>.sql", "<version>_<name>.up.sql", "dbmate"):
        assert pattern in hint


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(MigrationFileError) as exc:
        load_migration_set(missing)
    _assert_error(exc, "nope", "does not exist")


def test_folder_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "V1__a.sql"
    f.write_text("SELECT 1;")
    with pytest.raises(MigrationFileError) as exc:
        load_migration_set(f)
    _assert_error(exc, "V1__a.sql", "not a directory")


def test_broken_symlink_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, {"V1__a.sql": "SELECT 1;"})
    os.symlink(tmp_path / "gone.sql", tmp_path / "V2__b.sql")
    with pytest.raises(MigrationFileError) as exc:
        load_migration_set(tmp_path)
    _assert_error(exc, "V2__b.sql", "cannot read")


@pytest.mark.parametrize(
    "content",
    [
        "/*!40101 SET NAMES utf8 */",
        "/*M!100100 SET x=1 */",
        "-- comment\nSELECT 1",
        "#c\nx",
        "/* c */ x",
        "'--'",
    ],
)
def test_not_empty(tmp_path: Path, content: str) -> None:
    write(tmp_path, {"V1__a.sql": content})
    assert load_migration_set(tmp_path).migrations[0].up.text == content


def test_many_files_load_fast(tmp_path: Path) -> None:
    n = 10_000
    root = tmp_path / "big"
    root.mkdir()
    for i in range(1, n + 1):
        (root / f"V{i}__m{i}.sql").write_bytes(b"SELECT 1;\n")
        if i % 2:
            (root / f"U{i}__m{i}.sql").write_bytes(b"SELECT 2;\n")
    start = time.perf_counter()
    s = load_migration_set(root)
    elapsed = time.perf_counter() - start
    assert len(s.migrations) == n
    assert s.latest == V(str(n))
    assert [m.version.parts[0] for m in s.migrations] == list(range(1, n + 1))
    assert sum(m.undo is not None for m in s.migrations) == n // 2
    assert elapsed < 20
