"""dbroll runs a script as the `mariadb` client does: random scripts whose statements leave
rows behind (quotes and escapes, every kind of comment, `--` without a space, executable
comments, DELIMITER changes, several statements and compound statements under a custom
delimiter, an undelimited last statement, CRLF line ends) are applied once with the client
and once with `dbroll migrate`. Both must leave the same rows, and fail both or neither (each
stops at its first error, the earlier statements kept: the scripts start with DDL, so dbroll
runs them statement by statement, as the client does). The scripts come from fixed seeds: a
failure prints the one to replay. The splitter's documented differences from the client
(pipeline.migrations.sqlsplit) are left out of the grammar."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from tests.conftest import INSTALL_HINT, args, dbroll, query, write_files

CASES = 120

# values whose text holds what a splitter can trip on; all are valid SQL expressions
VALUES = [
    "'a;b'", "'it''s;'", r"'x\';y'", '"d;q"', '"a""b;"', "CONCAT('--', ';')", "'#;'",
    "'/*;'", "'*/;'", "1", "0x3B", "_utf8mb4';'", "1--1", "1 - -1", r"'\\'", r"'\\\''",
    "'--'", "'$$'", "'//'", "'DELIMITER ;'", "'\n;\n'", "`v`", "'END'", "'BEGIN'", "@x",
    "/*! 7 */", "/*!100000 8 */", "/*M! 9 */", "/*!99999 8 */ 1", "'a' /*! 'b' */",
    "1/*!*/", r"'\n--'", "CASE WHEN 1 THEN 'c;' END", "'x' 'y;'",
]  # fmt: skip
GAPS = [
    " ", "\n", " /* ; */ ", " -- ;x\n", " # ;y\n", "/**/", " /* a\n;b */ ", "\t", " --\n",
    " #\n", " /* -- */ ", " /* ' */ ", " -- ' \n", ' # " \n',
]  # fmt: skip
HEAD = "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT);\n"


def _gap(r: random.Random) -> str:
    return r.choice(GAPS) if r.random() < 0.4 else " "


def _statement(r: random.Random) -> str:
    v, kind = r.choice(VALUES), r.random()
    if kind < 0.6:
        text = f"INSERT{_gap(r)}INTO t (v){_gap(r)}VALUES{_gap(r)}({v}){_gap(r)}"
    elif kind < 0.8:
        text = f"INSERT INTO t (v) SELECT{_gap(r)}{v}{_gap(r)}AS `a;b`{_gap(r)}"
    else:
        text = f"SET @x{_gap(r)}={_gap(r)}{v}"
    # the client would split `/*! 7 *///` at the `//` delimiter starting inside the comment
    return text + " " if text.endswith("*/") else text


def script(r: random.Random) -> str:
    out, delim = [], ";"
    for _ in range(r.randint(1, 8)):
        x = r.random()
        if x < 0.12:
            delim = r.choice([";", "//", "$$", ";;", "@@"])
            out.append(f"\n{r.choice(['DELIMITER', 'delimiter'])} {delim}\n")
        elif x < 0.2 and delim != ";":
            if r.random() < 0.5:  # two statements, one unit: one packet from the client
                out.append(f"{_statement(r)};{_gap(r)}{_statement(r)}{delim}{_gap(r)}")
            else:
                out.append(
                    f"BEGIN NOT ATOMIC{_gap(r)}{_statement(r)};{_gap(r)}IF 1 THEN "
                    f"{_statement(r)}; END IF;{_gap(r)}END{_gap(r)}{delim}{_gap(r)}"
                )
        else:
            out.append(_statement(r) + delim + r.choice(["\n", " ", "", _gap(r)]))
    if delim != ";":
        out.append(r.choice(["\nDELIMITER ;\n", "\ndelimiter ;\n", "\n  DELIMITER ;  \n"]))
    if r.random() < 0.2:  # an undelimited last statement, perhaps with a comment after it
        out.append(_statement(r) + r.choice(["", " -- end", " # end", "\n"]))
    elif r.random() < 0.1:
        out.append(r.choice(["-- tail", "#tail", "/* tail */"]))
    text = HEAD + "".join(out)
    return text.replace("\n", "\r\n") if r.random() < 0.2 else text


def test_the_generator_reaches_what_it_is_for():
    """The grammar is not vacuous: across the cases, every construct turns up."""
    corpus = "".join(script(random.Random(seed)) for seed in range(CASES))
    for needle in ("DELIMITER //", "BEGIN NOT ATOMIC", "\r\n", "/*!", "--\n", "1--1", "@@"):
        assert needle in corpus, needle


@pytest.fixture
def reference(mariadb):
    spec = mariadb.create_database()
    yield spec
    mariadb.drop_database(spec)


def test_random_scripts_leave_the_same_rows_as_the_client(db, reference, tmp_path):
    client = shutil.which("mariadb") or shutil.which("mysql")
    assert client, INSTALL_HINT
    command = [client, "--no-defaults", f"-h{reference.host}", f"-P{reference.port}"]
    command += [f"-u{reference.user}", reference.database]
    env = {"MYSQL_PWD": reference.password} if reference.password else None
    failed_both = 0
    for seed in range(CASES):
        text = script(random.Random(seed))
        query(reference, "DROP TABLE IF EXISTS t")
        ran = subprocess.run(command, input=text.encode(), capture_output=True, env=env)
        expected = query(reference, "SELECT v FROM t ORDER BY id")

        query(db, "DROP TABLE IF EXISTS t, dbroll_history, dbroll_lock")
        mdir = write_files(tmp_path / str(seed), {})
        (mdir / "V1__script.sql").write_bytes(text.encode())
        r = dbroll("migrate", *args(db, mdir))
        got = query(db, "SELECT v FROM t ORDER BY id")

        replay = f"seed {seed}, script {text!r}"
        assert (r.exit_code == 0) == (ran.returncode == 0), (replay, ran.stderr, r.stderr)
        assert got == expected, replay
        failed_both += r.exit_code != 0
    # most scripts run to the end: the comparison is of statements run, not of first errors
    assert failed_both < CASES // 4
