"""Tests for pipeline.migrations.sqlsplit: splitting SQL scripts like the mariadb client."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.migrations.sqlsplit import SplitError, Statement, split_statements


def pairs(script: str) -> list[tuple[str, int]]:
    return [(s.text, s.line) for s in split_statements(script)]


# --- table-driven cases -----------------------------------------------------------------

PROCEDURE_WITH_DELIMITER = """\
DROP PROCEDURE IF EXISTS refill;
DELIMITER //
CREATE PROCEDURE refill(IN p_max INT)
BEGIN
  DECLARE i INT DEFAULT 0;
  DECLARE done INT DEFAULT 0;
  DECLARE CONTINUE HANDLER FOR NOT FOUND BEGIN SET done = 1; END;
  IF p_max > 100 THEN
    SET p_max = 100; -- clamp; keep it small
  ELSEIF p_max < 0 THEN
    SET p_max = 0;
  END IF;
  WHILE i < p_max DO
    CASE MOD(i, 3)
      WHEN 0 THEN INSERT INTO t (v) VALUES ('fizz;');
      WHEN 1 THEN INSERT INTO t (v) VALUES ("buzz//");
      ELSE BEGIN
        INSERT INTO t (v) VALUES (CASE WHEN i > 5 THEN 'big' ELSE 'small' END);
      END;
    END CASE;
    SET i = i + 1;
  END WHILE;
END //
DELIMITER ;
CALL refill(10);
"""

PROCEDURE_BODY = PROCEDURE_WITH_DELIMITER.split("DELIMITER //\n")[1].split(" //")[0]

TRIGGER_DBMATE = """\
-- migrate:up
CREATE TRIGGER orders_bi BEFORE INSERT ON orders
FOR EACH ROW
BEGIN
  IF NEW.total < 0 THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'negative total; rejected';
  END IF;
  SET NEW.created_at = COALESCE(NEW.created_at, NOW());
END;
CREATE INDEX orders_created ON orders (created_at);
"""

FUNCTION_CASE = """\
CREATE FUNCTION grade(score INT) RETURNS CHAR(1) DETERMINISTIC
RETURN CASE
  WHEN score >= 90 THEN 'A'
  WHEN score >= 80 THEN 'B'
  ELSE 'F'
END;
SELECT grade(95);
"""

FUNCTION_BEGIN_CASE = """\
CREATE DEFINER=`app`@`%` FUNCTION label_of(x INT) RETURNS VARCHAR(10)
BEGIN
  DECLARE r VARCHAR(10);
  SET r = CASE WHEN x > 0 THEN 'pos' WHEN x < 0 THEN 'neg' ELSE 'zero' END;
  RETURN r;
END;
SELECT 1;
"""

EVENT_DBMATE = """\
CREATE EVENT purge_sessions
  ON SCHEDULE EVERY 1 HOUR
  DO BEGIN
    DELETE FROM sessions WHERE expires_at < NOW();
    INSERT INTO audit (what) VALUES ('purged; ok');
  END;
SET GLOBAL event_scheduler = ON;
"""

DOLLAR_BLOCK = """\
DELIMITER $$
CREATE TRIGGER t_bu BEFORE UPDATE ON t FOR EACH ROW
BEGIN
  SET NEW.updated = NOW();
END$$
CREATE PROCEDURE noop() BEGIN END$$
DELIMITER ;
SELECT 'after';
"""

MYSQLDUMP_HEADER = """\
-- MySQL dump 10.19  Distrib 10.11.6-MariaDB
--
-- Host: localhost    Database: app
-- ------------------------------------------------------

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*M!100616 SET @OLD_NOTE_VERBOSITY=@@NOTE_VERBOSITY, NOTE_VERBOSITY=0 */;

--
-- Table structure for table `t`
--

DROP TABLE IF EXISTS `t`;
"""

MYSQLDUMP_TRIGGER = """\
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER t_ai AFTER INSERT ON t
FOR EACH ROW BEGIN
  INSERT INTO log VALUES (NEW.id);
END */;;
DELIMITER ;
"""

CASES = [
    pytest.param("SELECT 1;\nSELECT 2;\n", [("SELECT 1", 1), ("SELECT 2", 2)], id="two-simple"),
    pytest.param(
        PROCEDURE_WITH_DELIMITER,
        [
            ("DROP PROCEDURE IF EXISTS refill", 1),
            (PROCEDURE_BODY, 3),
            ("CALL refill(10)", 25),
        ],
        id="procedure-delimiter-slashes-nested-blocks",
    ),
    pytest.param(
        TRIGGER_DBMATE,
        [
            ("\n".join(TRIGGER_DBMATE.splitlines()[1:9])[:-1], 2),
            ("CREATE INDEX orders_created ON orders (created_at)", 10),
        ],
        id="trigger-dbmate-style",
    ),
    pytest.param(
        FUNCTION_CASE,
        [(FUNCTION_CASE.split(";\n")[0], 1), ("SELECT grade(95)", 7)],
        id="function-case-expression-no-begin",
    ),
    pytest.param(
        FUNCTION_BEGIN_CASE,
        [(FUNCTION_BEGIN_CASE.split(";\nSELECT")[0], 1), ("SELECT 1", 7)],
        id="function-definer-begin-case-expression",
    ),
    pytest.param(
        EVENT_DBMATE,
        [(EVENT_DBMATE.split(";\nSET")[0], 1), ("SET GLOBAL event_scheduler = ON", 7)],
        id="event-with-body",
    ),
    pytest.param(
        DOLLAR_BLOCK,
        [
            (
                "CREATE TRIGGER t_bu BEFORE UPDATE ON t FOR EACH ROW\n"
                "BEGIN\n  SET NEW.updated = NOW();\nEND",
                2,
            ),
            ("CREATE PROCEDURE noop() BEGIN END", 6),
            ("SELECT 'after'", 8),
        ],
        id="delimiter-dollars-then-back",
    ),
    pytest.param(
        MYSQLDUMP_HEADER,
        [
            ("/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */", 6),
            ("/*!40101 SET NAMES utf8mb4 */", 7),
            ("/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */", 8),
            ("/*M!100616 SET @OLD_NOTE_VERBOSITY=@@NOTE_VERBOSITY, NOTE_VERBOSITY=0 */", 9),
            ("DROP TABLE IF EXISTS `t`", 15),
        ],
        id="mysqldump-header",
    ),
    pytest.param(
        MYSQLDUMP_TRIGGER,
        [(MYSQLDUMP_TRIGGER.split("DELIMITER ;;\n")[1].split(";;")[0], 2)],
        id="mysqldump-trigger-executable-comments",
    ),
    pytest.param(
        "/*!50003 SET a=1; SET b=2 */;\nSELECT 3;",
        [("/*!50003 SET a=1; SET b=2 */", 1), ("SELECT 3", 2)],
        id="semicolon-inside-executable-comment",
    ),
    pytest.param(
        "INSERT INTO t VALUES ('a;b', 'c -- d', 'e # f', 'g /* h', \"i;j\");\nSELECT 2;",
        [
            ("INSERT INTO t VALUES ('a;b', 'c -- d', 'e # f', 'g /* h', \"i;j\")", 1),
            ("SELECT 2", 2),
        ],
        id="strings-with-markers",
    ),
    pytest.param(
        "SELECT 'it\\'s;', 'it''s;', \"say \\\"hi;\\\"\", \"a\"\";\", 'back\\\\';\nSELECT 2;",
        [
            ("SELECT 'it\\'s;', 'it''s;', \"say \\\"hi;\\\"\", \"a\"\";\", 'back\\\\'", 1),
            ("SELECT 2", 2),
        ],
        id="escaped-quotes",
    ),
    pytest.param(
        "SELECT `a;b`, `c``;d`, `e\\` FROM `t;1`;\nSELECT 2;",
        [("SELECT `a;b`, `c``;d`, `e\\` FROM `t;1`", 1), ("SELECT 2", 2)],
        id="backticks",
    ),
    pytest.param(
        "SELECT 1--1;\nSELECT 2 -- real comment; not a boundary\n, 3;\nSELECT 4;--\n",
        [
            ("SELECT 1--1", 1),
            ("SELECT 2 -- real comment; not a boundary\n, 3", 2),
            ("SELECT 4", 4),
        ],
        id="double-dash-needs-space",
    ),
    pytest.param("-- only\n# comments\n/* here; */\n\n", [], id="comment-only-file"),
    pytest.param("", [], id="empty-file"),
    pytest.param(" \n\t\n", [], id="whitespace-only-file"),
    pytest.param(
        "SELECT 1;\nSELECT 2\n  FROM dual  \n",
        [("SELECT 1", 1), ("SELECT 2\n  FROM dual", 2)],
        id="last-without-delimiter",
    ),
    pytest.param(
        "SET @s = CONCAT('SELECT * FROM ', @tbl, ' WHERE a = ?; ');\n"
        "PREPARE stmt FROM @s;\nEXECUTE stmt USING @a;\nDEALLOCATE PREPARE stmt;\n",
        [
            ("SET @s = CONCAT('SELECT * FROM ', @tbl, ' WHERE a = ?; ')", 1),
            ("PREPARE stmt FROM @s", 2),
            ("EXECUTE stmt USING @a", 3),
            ("DEALLOCATE PREPARE stmt", 4),
        ],
        id="prepared-statement",
    ),
    pytest.param(
        "-- header\r\nSELECT 1;\r\nSELECT 'a\r\nb'\r\n  , 2;\r\nDELIMITER //\r\n"
        "CREATE PROCEDURE p() BEGIN SELECT 1; END//\r\nDELIMITER ;\r\nSELECT 3;\r\n",
        [
            ("SELECT 1", 2),
            # as the client sends it: the \r of each \r\n dropped (here inside a string)
            ("SELECT 'a\nb'\n  , 2", 3),
            ("CREATE PROCEDURE p() BEGIN SELECT 1; END", 7),
            ("SELECT 3", 9),
        ],
        id="crlf",
    ),
    pytest.param(
        "/* leading */ SELECT 1 /* inside; */ + 2 # tail\n;\n",
        [("SELECT 1 /* inside; */ + 2 # tail", 1)],
        id="leading-comment-dropped-inner-kept",
    ),
    pytest.param(
        "BEGIN;\nINSERT INTO t VALUES (1);\nCOMMIT;\nBEGIN WORK;\nROLLBACK;",
        [
            ("BEGIN", 1),
            ("INSERT INTO t VALUES (1)", 2),
            ("COMMIT", 3),
            ("BEGIN WORK", 4),
            ("ROLLBACK", 5),
        ],
        id="transaction-begin-is-plain",
    ),
    pytest.param(
        "BEGIN NOT ATOMIC\n  DECLARE x INT DEFAULT 1;\n  IF x THEN SELECT x; END IF;\nEND;\n"
        "SELECT 2;",
        [
            ("BEGIN NOT ATOMIC\n  DECLARE x INT DEFAULT 1;\n  IF x THEN SELECT x; END IF;\nEND", 1),
            ("SELECT 2", 5),
        ],
        id="begin-not-atomic",
    ),
    pytest.param(
        "create or replace definer = 'admin'@'localhost' procedure p()\n"
        "begin select 1; end;\nselect 2;",
        [
            (
                "create or replace definer = 'admin'@'localhost' procedure p()\n"
                "begin select 1; end",
                1,
            ),
            ("select 2", 3),
        ],
        id="create-or-replace-definer-lowercase",
    ),
    pytest.param(
        "CREATE DEFINER=CURRENT_USER AGGREGATE FUNCTION agg(x INT) RETURNS INT\n"
        "BEGIN\n  DECLARE s INT DEFAULT 0;\n  DECLARE CONTINUE HANDLER FOR NOT FOUND RETURN s;\n"
        "  LOOP FETCH GROUP NEXT ROW; SET s = s + x; END LOOP;\nEND;\nSELECT 1;",
        [
            (
                "CREATE DEFINER=CURRENT_USER AGGREGATE FUNCTION agg(x INT) RETURNS INT\n"
                "BEGIN\n  DECLARE s INT DEFAULT 0;\n"
                "  DECLARE CONTINUE HANDLER FOR NOT FOUND RETURN s;\n"
                "  LOOP FETCH GROUP NEXT ROW; SET s = s + x; END LOOP;\nEND",
                1,
            ),
            ("SELECT 1", 7),
        ],
        id="aggregate-function-loop",
    ),
    pytest.param(
        "CREATE FUNCTION one() RETURNS INT RETURN 1;\nSELECT one();",
        [("CREATE FUNCTION one() RETURNS INT RETURN 1", 1), ("SELECT one()", 2)],
        id="function-without-begin",
    ),
    pytest.param(
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1;\nSELECT 2;",
        [("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1", 1), ("SELECT 2", 2)],
        id="trigger-without-begin",
    ),
    pytest.param(
        "CREATE PROCEDURE p()\nouter_blk: BEGIN\n"
        "  REPEAT SET @n = @n + 1; UNTIL @n > 3 END REPEAT;\n"
        "  FOR i IN 1..3 DO SELECT i; END FOR;\n"
        "  CASE @n WHEN 1 THEN SELECT 'one'; ELSE SELECT 'other'; END CASE;\n"
        "  SELECT t.end, @end, `end`, 'END;' FROM t; -- END; BEGIN\n"
        "  /* BEGIN CASE */ # CASE\n"
        "END outer_blk;\nSELECT 9;",
        [
            (
                "CREATE PROCEDURE p()\nouter_blk: BEGIN\n"
                "  REPEAT SET @n = @n + 1; UNTIL @n > 3 END REPEAT;\n"
                "  FOR i IN 1..3 DO SELECT i; END FOR;\n"
                "  CASE @n WHEN 1 THEN SELECT 'one'; ELSE SELECT 'other'; END CASE;\n"
                "  SELECT t.end, @end, `end`, 'END;' FROM t; -- END; BEGIN\n"
                "  /* BEGIN CASE */ # CASE\n"
                "END outer_blk",
                1,
            ),
            ("SELECT 9", 9),
        ],
        id="labels-loops-and-keywords-not-counted",
    ),
    pytest.param(
        "DELIMITER ;;\nSELECT 1;;\nSELECT 2; SELECT 3;;\ndelimiter ;\n  select 4;",
        [("SELECT 1", 2), ("SELECT 2; SELECT 3", 3), ("select 4", 5)],
        id="double-semicolon-delimiter",
    ),
    pytest.param(
        "  Delimiter |  trailing words ignored\nSELECT 1|SELECT '|'|\nDELIMITER ;\nSELECT 2;",
        [("SELECT 1", 2), ("SELECT '|'", 2), ("SELECT 2", 4)],
        id="delimiter-indented-mixed-case-pipe",
    ),
    pytest.param(
        "SELECT 1\nDELIMITER //\nSELECT 2//",
        [("SELECT 1", 1), ("SELECT 2", 3)],
        id="delimiter-line-ends-pending-statement",
    ),
    pytest.param(
        "SELECT 1;;;\n;\nSELECT 2 ; ;",
        [("SELECT 1", 1), ("SELECT 2", 3)],
        id="empty-statements-skipped",
    ),
    pytest.param(
        "SELECT 1;\nSELECT 2 -- no delimiter\n/* c */\n",
        [("SELECT 1", 1), ("SELECT 2 -- no delimiter\n/* c */", 2)],
        id="comments-after-undelimited-last-statement-kept",
    ),
    pytest.param(
        "SELECT 1; -- trailing",
        [("SELECT 1", 1)],
        id="trailing-dash-comment-at-eof",
    ),
    pytest.param(
        "SELECT 1 --\n, 2;\nSELECT 3 #x;\n;",
        [("SELECT 1 --\n, 2", 1), ("SELECT 3 #x;", 3)],
        id="dash-dash-at-end-of-line-and-hash",
    ),
    pytest.param(
        "SELECT 'line1\nline2\nline3';\n/* a\nb\n*/ SELECT\n2;\nSELECT 3;",
        [("SELECT 'line1\nline2\nline3'", 1), ("SELECT\n2", 6), ("SELECT 3", 8)],
        id="line-numbers-across-multiline-tokens",
    ),
    pytest.param(
        "\ufeffSELECT 1;",
        [("SELECT 1", 1)],
        id="byte-order-mark",
    ),
    pytest.param(
        "SELECT x'41', b'01', N'a;b', _utf8mb4'c;d' COLLATE utf8mb4_bin;",
        [("SELECT x'41', b'01', N'a;b', _utf8mb4'c;d' COLLATE utf8mb4_bin", 1)],
        id="prefixed-literals",
    ),
    pytest.param(
        "CREATE TABLE t (a INT, b TEXT) /* c */;\nALTER TABLE t ADD COLUMN `delimiter` INT;",
        [
            ("CREATE TABLE t (a INT, b TEXT) /* c */", 1),
            ("ALTER TABLE t ADD COLUMN `delimiter` INT", 2),
        ],
        id="delimiter-word-mid-line",
    ),
]


@pytest.mark.parametrize(("script", "expected"), CASES)
def test_split_cases(script: str, expected: list[tuple[str, int]]) -> None:
    assert pairs(script) == expected


def test_procedure_body_sanity() -> None:
    # The expected text of the DELIMITER // case is cut out of the script; make sure the
    # cut is what we think it is, so the case above really checks something.
    assert PROCEDURE_BODY.startswith("CREATE PROCEDURE refill")
    assert PROCEDURE_BODY.endswith("END WHILE;\nEND")
    assert PROCEDURE_BODY.count(";") == 16


@pytest.mark.parametrize(
    ("script", "line", "what"),
    [
        pytest.param("SELECT 1;\nSELECT 'abc;\n\n", 2, "'...' string", id="single"),
        pytest.param('SELECT 1;\n\nSELECT "abc\\";', 3, '"..." string', id="double"),
        pytest.param("SELECT `abc``;", 1, "`...` identifier", id="backtick"),
        pytest.param("SELECT 'it''", 1, "'...' string", id="doubled-at-eof"),
        pytest.param("SELECT 1;\n/* open\n;", 2, "/* comment", id="block-comment"),
        pytest.param("SELECT /*! 1;", 1, "/* comment", id="executable-comment"),
        pytest.param("-- x\n-- y\nDELIMITER\nSELECT 1;", 3, "DELIMITER", id="delimiter-no-arg"),
        pytest.param("DELIMITER \\\\\nSELECT 1;", 1, "backslash", id="delimiter-backslash"),
    ],
)
def test_split_errors(script: str, line: int, what: str) -> None:
    with pytest.raises(SplitError) as info:
        split_statements(script)
    assert isinstance(info.value, ValueError)
    assert info.value.line == line
    assert what in str(info.value)
    assert f"line {line}" in str(info.value)


def test_statement_is_frozen_and_first_line() -> None:
    s = Statement("SELECT 1\r\n  FROM t", 3)
    assert s.first_line == "SELECT 1"
    with pytest.raises(AttributeError):
        s.text = "x"  # type: ignore[misc]
    long = Statement("SELECT " + "x" * 200 + "\nFROM t", 1)
    assert len(long.first_line) == 120
    assert long.first_line.endswith("…")
    assert long.first_line[:-1] == long.text[:119]
    exact = Statement("y" * 120, 1)
    assert exact.first_line == "y" * 120


def test_many_statements() -> None:
    script = "".join(f"INSERT INTO t VALUES ({i}, 'v;{i}');\n" for i in range(1000))
    got = split_statements(script)
    assert len(got) == 1000
    assert got[999] == Statement("INSERT INTO t VALUES (999, 'v;999')", 1000)


# --- property tests ---------------------------------------------------------------------

identifiers = st.one_of(
    st.sampled_from(["id", "t", "SELECT", "FROM", "WHERE", "x_1", "NOW()", "IF(a,b,c)"]),
    st.builds("".join, st.lists(st.sampled_from("abcdefxyz_09"), min_size=1, max_size=6)).map(
        lambda s: "c" + s
    ),
)
numbers = st.integers(min_value=0, max_value=10**6).map(str)

_TEXT = ["a", "Z", " ", "0", ";", "--", "-- ", "#", "/* ", "*/", "\n", "DELIMITER //"]


def _quoted(quote: str, extra: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(_TEXT + extra), max_size=8).map(
        lambda parts: quote + "".join(parts) + quote
    )


single_quoted = _quoted("'", ["''", "\\'", "\\\\", '"', "`", '\\"'])
double_quoted = _quoted('"', ['""', '\\"', "\\\\", "'", "`", "\\'"])
backticked = _quoted("`", ["``", "'", '"'])

_COMMENT_TEXT = ["a", " ", ";", "'", '"', "`", "--", "#", "-- x", "DELIMITER //", "//", "$$"]
block_comments = st.lists(st.sampled_from([*_COMMENT_TEXT, "\n", "/* "]), max_size=6).map(
    lambda parts: "/* " + "".join(parts) + " */"
)
executable_comments = st.lists(st.sampled_from([*_COMMENT_TEXT, "\n"]), max_size=6).map(
    lambda parts: "/*!40101 " + "".join(parts) + " */"
)
line_comments = st.tuples(
    st.sampled_from(["-- ", "--\t", "#", "# "]), st.lists(st.sampled_from(_COMMENT_TEXT))
).map(lambda t: t[0] + "".join(t[1]) + "\n")

operators = st.sampled_from(["=", ",", "(", ")", "+", "*", "1--1", "a-b", "-", "@v", "<>"])

# A fragment that can start or end a statement (significant, no trailing operator).
solid = st.one_of(identifiers, numbers, single_quoted, double_quoted, backticked)
fragment = st.one_of(solid, operators, block_comments, executable_comments, line_comments)


@st.composite
def statements(draw: st.DrawFn) -> str:
    first = draw(st.one_of(solid, executable_comments))
    middle = draw(st.lists(fragment, max_size=6))
    last = draw(solid)
    parts = [first, *middle, last]
    joiners = draw(st.lists(st.sampled_from([" ", " ", "\n", "\t", "  \n  "]), min_size=3))
    out = parts[0]
    for i, part in enumerate(parts[1:]):
        out += joiners[i % len(joiners)] + part
    return out


_FILL = ["", "\n", "  \n", "\t", "-- note; 'x\n", '# x; "y\n', "/* ; ' */\n", "/* a */ "]
# Whitespace, comments and (with the default delimiter) empty statements between statements.
fillers = st.lists(st.sampled_from([*_FILL, ";\n"]), max_size=3).map("".join)
# With a custom delimiter a lone ';' is SQL text, not an empty statement.
custom_fillers = st.lists(st.sampled_from(_FILL), max_size=3).map("".join)


def build_script(
    stmts: list[str], fills: list[str], delimiter: str, final_delim: bool, crlf: bool
) -> tuple[str, list[tuple[str, int]]]:
    """Join statements with `delimiter + newline` and fillers; return script and expectation."""
    script = "" if delimiter == ";" else f"DELIMITER {delimiter}\n"
    expected = []
    for i, stmt in enumerate(stmts):
        script += fills[i % len(fills)] if fills else ""
        expected.append((stmt.rstrip(), script.count("\n") + 1))
        script += stmt
        if i < len(stmts) - 1 or final_delim:
            script += delimiter
        script += "\n"
    if fills and final_delim:
        # (Comments after an undelimited last statement belong to it: see the table cases.)
        script += fills[-1]
    if crlf:  # the texts are as the client sends them: without the \r of a \r\n
        script = script.replace("\n", "\r\n")
    return script, expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stmts=st.lists(statements(), min_size=1, max_size=6),
    fills=st.lists(fillers, max_size=4),
    final_delim=st.booleans(),
    crlf=st.booleans(),
)
def test_property_split_recovers_statements(
    stmts: list[str], fills: list[str], final_delim: bool, crlf: bool
) -> None:
    script, expected = build_script(stmts, fills, ";", final_delim, crlf)
    assert pairs(script) == expected
    # A statement on its own splits to itself: no boundary inside quotes or comments.
    for text, _ in expected:
        assert [s.text for s in split_statements(text)] == [text]


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stmts=st.lists(statements(), min_size=1, max_size=5),
    fills=st.lists(custom_fillers, max_size=3),
    delimiter=st.sampled_from(["//", "$$", ";;", "|", "@@@"]),
    final_delim=st.booleans(),
)
def test_property_custom_delimiter(
    stmts: list[str], fills: list[str], delimiter: str, final_delim: bool
) -> None:
    script, expected = build_script(stmts, fills, delimiter, final_delim, False)
    assert pairs(script) == expected


# fmt: off
SOUP = [
    "a", "b1", ";", ";;", "'", '"', "`", "\\", "--", "-", "#", "/*", "*/", "/*!", "*", "/",
    "//", "$$", "BEGIN", "END", "CASE", "x'00'", "'a;b'", "é", " ", "\n", "\r\n", "\t", "-- ",
    "DELIMITER ", "delimiter //", "END IF", "CREATE PROCEDURE p() ", "BEGIN NOT ATOMIC ",
]
# fmt: on


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(SOUP), max_size=40).map("".join))
def test_property_texts_sit_at_their_lines(script: str) -> None:
    try:
        got = split_statements(script)
    except SplitError as err:
        assert 1 <= err.line <= script.count("\n") + 1
        return
    script = script.replace("\r\n", "\n")  # the texts are without the \r of a \r\n
    line_starts = [0] + [i + 1 for i, ch in enumerate(script) if ch == "\n"]
    previous_end = 0
    for stmt in got:
        assert stmt.text
        assert stmt.text == stmt.text.rstrip()
        assert not stmt.text[0].isspace()
        assert 1 <= stmt.line <= len(line_starts)
        begin = line_starts[stmt.line - 1]
        pos = script.find(stmt.text, max(begin, previous_end))
        assert pos >= 0, stmt
        # It starts on the line it claims to start on.
        assert script.count("\n", 0, pos) + 1 == stmt.line, stmt
        previous_end = pos + len(stmt.text)


# --- compound statements: random nesting of blocks -------------------------------------


def _blocks(depth: int) -> st.SearchStrategy[str]:
    simple = st.sampled_from(
        [
            "SELECT 1;",
            "SET @x = CASE WHEN @y THEN 'a;' ELSE 'b' END;",
            "INSERT INTO t VALUES ('END;');",
            "SET @e = t.end; -- END; BEGIN\n",
            "SET @s = 'BEGIN';",
        ]
    )
    if depth == 0:
        return simple
    inner = st.lists(_blocks(depth - 1), min_size=1, max_size=3).map(" ".join)
    return st.one_of(
        simple,
        inner.map(lambda b: f"BEGIN {b} END;"),
        inner.map(lambda b: f"lbl: BEGIN\n{b}\nEND lbl;"),
        inner.map(lambda b: f"IF @a THEN {b} ELSE {b} END IF;"),
        inner.map(lambda b: f"WHILE @a DO {b} END WHILE;"),
        inner.map(lambda b: f"LOOP {b} LEAVE x; END LOOP;"),
        inner.map(lambda b: f"REPEAT {b} UNTIL @a END REPEAT;"),
        inner.map(lambda b: f"CASE @a WHEN 1 THEN {b} ELSE {b} END CASE;"),
        inner.map(lambda b: f"FOR i IN 1..2 DO {b} END FOR;"),
    )


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bodies=st.lists(_blocks(3), min_size=1, max_size=3),
    header=st.sampled_from(
        [
            "CREATE PROCEDURE p()",
            "CREATE OR REPLACE DEFINER=`u`@`%` PROCEDURE p(IN a INT)",
            "CREATE FUNCTION f() RETURNS INT",
            "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW",
            "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO",
        ]
    ),
)
def test_property_compound_statement_is_one_statement(bodies: list[str], header: str) -> None:
    compound = f"{header}\nBEGIN\n" + "\n".join(bodies) + "\nEND"
    script = f"SELECT 0;\n{compound};\nSELECT 2;\n"
    assert pairs(script) == [
        ("SELECT 0", 1),
        (compound, 2),
        ("SELECT 2", compound.count("\n") + 3),
    ]
