"""Split a SQL script into single statements, the way the `mariadb` command-line client does.

The result can be sent to the server one statement at a time (PyMySQL runs one statement per
`execute`). What the splitter understands:

* the delimiter (``;`` by default) and ``DELIMITER xx`` lines that change it (``//``, ``$$``,
  ``;;`` ...); the DELIMITER line itself is not a statement;
* ``'...'`` and ``"..."`` strings (backslash escapes and doubled quotes) and backtick
  identifiers (doubled backticks): never a boundary inside them;
* comments: ``-- `` (the dashes must be followed by whitespace or the end of the line),
  ``#`` to the end of the line and ``/* ... */``. Executable comments (``/*! ... */``,
  ``/*!50003 ... */``, ``/*M! ... */``) belong to the statement text; a delimiter inside any
  comment never splits;
* compound statements written without a DELIMITER change (dbmate style): a statement that
  starts with ``CREATE [OR REPLACE] [DEFINER = user] [AGGREGATE] PROCEDURE | FUNCTION |
  TRIGGER | EVENT`` or with ``BEGIN NOT ATOMIC`` only ends at a ``;`` outside every
  ``BEGIN ... END`` / ``CASE ... END [CASE]`` block (keywords outside quotes and comments,
  as whole words; ``END IF/LOOP/WHILE/REPEAT/FOR`` leave the depth alone because their
  openers are not counted: ``IF(`` is also a function).

Line ends are the client's: the ``\r`` of a ``\r\n`` is dropped (it matters only inside a
string that spans lines).

Each statement keeps its text exactly as written (comments inside it included), from its
first significant character up to its delimiter, trailing whitespace removed, together with
the 1-based line it starts on. Comment-only segments are not statements.

Deliberate differences from the client: a delimiter inside ``/*! ... */`` does not split
(the client would split there and send half a comment, also where the delimiter only starts
inside it, as ``/*! x *///`` with ``//``); backslashes do not escape inside backtick
identifiers (the server's rule); DELIMITER is only recognised at the start of a line (the
client also takes it after other text on a line); ``\\g``/``\\G`` and other client commands
are not recognised; comments are kept in the statement text (the client strips them unless
``--comments``); the NO_BACKSLASH_ESCAPES sql_mode is not modelled.

The scanner makes a single pass over the script and jumps over quotes and comments with
precompiled regular expressions, so even large dumps split in a few milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["SplitError", "Statement", "split_statements"]

_FIRST_LINE_MAX = 120


@dataclass(frozen=True)
class Statement:
    """One statement of a script.

    `text` is the statement as written (no delimiter, trailing whitespace stripped) and
    `line` the 1-based line of the script where `text` starts.
    """

    text: str
    line: int

    @property
    def first_line(self) -> str:
        """The first line of `text`, cut to 120 characters (ending in '…' when cut)."""
        first = self.text.partition("\n")[0].rstrip()
        if len(first) > _FIRST_LINE_MAX:
            return first[: _FIRST_LINE_MAX - 1] + "…"
        return first


class SplitError(ValueError):
    """The script cannot be split: an unterminated quote or comment, a bad DELIMITER line.

    `line` is the 1-based line where the offending construct starts; the message names it
    too (callers prefix the file name).
    """

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


# --- patterns ---------------------------------------------------------------------------

_SPACE = " \t\n\r\f\v"

# The rest of a quoted string or identifier, after its opening quote, up to and including
# the closing quote. Possessive so that a string without its closing quote fails instead
# of backtracking into a shorter (wrong) match.
_QUOTE_REST = {
    "'": re.compile(r"(?:[^'\\]++|\\.|'')*+'", re.S),
    '"': re.compile(r'(?:[^"\\]++|\\.|"")*+"', re.S),
    "`": re.compile(r"(?:[^`]++|``)*+`"),
}
_QUOTE_NAME = {"'": "'...' string", '"': '"..." string', "`": "`...` identifier"}

# Whitespace and plain comments between the words of a compound-statement header.
_GAP = r"(?:\s++|/\*(?!M?!).*?\*/|\#[^\n]*+|--(?=\s)[^\n]*+)"
_QUOTED = r"""(?:'(?:[^'\\]++|\\.|'')*+'|"(?:[^"\\]++|\\.|"")*+"|`(?:[^`]++|``)*+`)"""
_DEFINER_VALUE = rf"""(?:{_QUOTED}|[^\s'"`;]++)++"""
_COMPOUND_START = re.compile(
    rf"""
    (?:
        CREATE{_GAP}+
        (?:OR{_GAP}+REPLACE{_GAP}+)?
        (?:DEFINER{_GAP}*={_GAP}*{_DEFINER_VALUE}{_GAP}+)?
        (?:AGGREGATE{_GAP}+)?
        (?:PROCEDURE|FUNCTION|TRIGGER|EVENT)
      | BEGIN{_GAP}+NOT{_GAP}+ATOMIC
    )
    (?![\w$])
    """,
    re.I | re.S | re.X,
)

# What follows END: `END IF` / `END LOOP` / ... close blocks whose openers are not counted;
# `END CASE` closes a CASE; anything else (`END`, `END label`) closes a BEGIN or a CASE.
_END_TAIL = re.compile(r"[ \t\r\n\f\v]++(?i:(case)|if|loop|while|repeat|for)(?![\w$])")

_DELIMITER_LINE = r"(?P<dl>^[ \t]*+(?i:delimiter)(?=[ \t\r\n]|\Z))"
_QUOTE = r"(?P<q>['\"`])"
_LINE_COMMENT = r"(?P<lc>\#|--(?=[ \t\n\r\f\v]|\Z))"
_BLOCK_COMMENT = r"(?P<bc>/\*)"
_KEYWORD_WORD = r"(?<![\w$@.])(?i:begin|case|end)(?![\w$])"
_KEYWORD = rf"(?P<kw>{_KEYWORD_WORD})"


_Patterns = tuple[
    re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]
]


@lru_cache(maxsize=32)
def _scanners(delimiter: str) -> _Patterns:
    """Patterns for one delimiter.

    `between`, `inside` and `compound` find the next token between statements, in a plain
    statement and in a compound statement (where BEGIN/CASE/END count); the delimiter comes
    first, like in the client, and at any position the leftmost token wins. `skip` and
    `skip_compound` are the fast path: anchored at a position, they run in one call over
    everything that cannot be such a token (complete quoted strings included).
    """
    delim = re.escape(delimiter)
    common = [f"(?P<d>{delim})", _DELIMITER_LINE, _QUOTE, _LINE_COMMENT, _BLOCK_COMMENT]
    between = re.compile("|".join([*common, r"(?P<sig>[^ \t\r\n\f\v])"]), re.M)
    inside = re.compile("|".join(common), re.M)
    compound = re.compile("|".join([*common, _KEYWORD]), re.M)

    specials = "'\"`#/-\n"
    first = delimiter[0]
    stops = "'\"`#/\\-\n" + ("" if first in specials else re.escape(first))
    steps = [r"\n", _QUOTED, r"/(?!\*)", r"-(?!-(?:[ \t\n\r\f\v]|\Z))"]
    if first not in specials:
        steps.append(re.escape(first))
    guard = rf"(?!{delim})(?!^[ \t]*+(?i:delimiter)(?:[ \t\r\n]|\Z))"
    skip = re.compile(rf"(?:{guard}(?:[^{stops}]++|{'|'.join(steps)}))*+", re.M | re.S)
    # In a compound statement (only ever with the ';' delimiter) whole words are stepped
    # over, unless they are a keyword.
    word_steps = rf"(?!{_KEYWORD_WORD})[\w$@.]++|[^\w$@.{stops}]++"
    skip_compound = re.compile(rf"(?:{guard}(?:{word_steps}|{'|'.join(steps)}))*+", re.M | re.S)
    return between, inside, compound, skip, skip_compound


# --- the scanner ------------------------------------------------------------------------


def split_statements(script: str) -> list[Statement]:
    """Split `script` into statements as the `mariadb` client would.

    Raises SplitError (a ValueError) for an unterminated quote or block comment, naming the
    line where it starts, and for a DELIMITER line without a usable delimiter.
    """
    if "\r\n" in script:
        # the client reads a line at a time and drops the \r of its \r\n: so does a string
        # that spans lines (one \r before each \n; a lone \r stays)
        script = script.replace("\r\n", "\n")
    n = len(script)
    statements: list[Statement] = []

    # Line numbers: positions asked for (almost) only grow, so count newlines incrementally.
    counted_to = 0
    counted_line = 1

    def line_at(pos: int) -> int:
        nonlocal counted_to, counted_line
        if pos < counted_to:
            counted_to, counted_line = 0, 1
        if pos > counted_to:
            counted_line += script.count("\n", counted_to, pos)
            counted_to = pos
        return counted_line

    def emit(end: int) -> None:
        text = script[start:end].rstrip()
        statements.append(Statement(text, line_at(start)))

    delimiter = ";"
    between, inside, in_compound, skip, skip_compound = _scanners(delimiter)
    start = -1  # first significant character of the pending statement, -1 if none
    compound = False
    depth = 0
    pos = 1 if script.startswith("\ufeff") else 0  # a UTF-8 byte order mark is not SQL

    while True:
        if start < 0:
            m = between.search(script, pos)
        else:
            # The skip patterns always match (possibly the empty string).
            skipped = (skip_compound if compound else skip).match(script, pos)
            if skipped is not None:
                pos = skipped.end()
            m = (in_compound if compound else inside).search(script, pos)
        if m is None:
            break
        kind = m.lastgroup
        at = m.start()

        if kind == "d":
            if compound and depth > 0:
                pos = m.end()
                continue
            if start >= 0:
                emit(at)
                start, compound, depth = -1, False, 0
            pos = m.end()

        elif kind == "sig":
            start = at
            compound = delimiter == ";" and _COMPOUND_START.match(script, at) is not None
            pos = at  # rescan from here with the in-statement scanner (keywords included)

        elif kind == "q":
            if start < 0:
                start = at
            quote = script[at]
            rest = _QUOTE_REST[quote].match(script, at + 1)
            if rest is None:
                line = line_at(at)
                raise SplitError(f"unterminated {_QUOTE_NAME[quote]} starting at line {line}", line)
            pos = rest.end()

        elif kind == "lc":
            eol = script.find("\n", m.end())
            pos = n if eol < 0 else eol

        elif kind == "bc":
            close = script.find("*/", m.end())
            if close < 0:
                line = line_at(at)
                raise SplitError(f"unterminated /* comment starting at line {line}", line)
            if start < 0 and (script.startswith("!", m.end()) or script.startswith("M!", m.end())):
                start = at  # an executable comment is significant
            pos = close + 2

        elif kind == "kw":
            word = m.group("kw").lower()
            pos = m.end()
            if word == "end":
                tail = _END_TAIL.match(script, pos)
                if tail is not None:
                    pos = tail.end()
                    if tail.group(1) is None:
                        continue  # END IF / END LOOP / END WHILE / END REPEAT / END FOR
                if depth > 0:
                    depth -= 1
            else:
                depth += 1

        else:  # "dl": a DELIMITER line ends any pending statement, like in the client
            if start >= 0:
                emit(at)
                start, compound, depth = -1, False, 0
            eol = script.find("\n", m.end())
            if eol < 0:
                eol = n
            delimiter = _parse_delimiter(script[m.end() : eol], line_at(at))
            between, inside, in_compound, skip, skip_compound = _scanners(delimiter)
            pos = eol

    if start >= 0:
        emit(n)
    return statements


def _parse_delimiter(arg: str, line: int) -> str:
    """The new delimiter from the rest of a DELIMITER line (like the client's get_arg)."""
    arg = arg.strip(_SPACE)
    if not arg:
        raise SplitError(f"DELIMITER at line {line} is not followed by a delimiter", line)
    quote = arg[0]
    if quote in "'\"`" and (close := arg.find(quote, 1)) > 1:
        token = arg[1:close]
    else:
        token = arg.split(None, 1)[0]
    if "\\" in token:
        raise SplitError(f"DELIMITER at line {line} contains a backslash", line)
    return token
