"""Roll forward: a rollback plan's undo steps written as the next forward migration.

When the deployed image cannot be rolled back (the old image must not run, the pipeline
only moves forward), the schema change can still be taken back by a *new* migration that
does what the undo would have done. ``roll_forward(plan, files, mset, reason)`` takes a
rollback plan with undo steps (a bundle's ``plan.json`` and ``sql/`` files) and the repo's
migration folder, and returns the files of that migration in the folder's own format:

| format | files |
|---|---|
| Flyway | ``V<next>__rollforward_of_<versions>.sql`` and ``U<next>__...sql`` |
| dbmate | ``<next>_rollforward_of_<versions>.sql`` with ``-- migrate:up`` / ``-- migrate:down`` |
| golang-migrate | ``<next>_rollforward_of_<versions>.up.sql`` and ``.down.sql`` |

``<next>`` follows the folder's version style: the latest version plus one in its last
component, zero padding kept (``V7`` -> ``V8``, ``1.9`` -> ``1.10``, ``003`` -> ``004``),
or the current UTC time for timestamped folders (``YYYYMMDDHHMMSS``, Unix seconds).

The forward script holds the plan's undo scripts in the plan's order (newest first), each
after a comment naming it, under a header naming the reverted versions, the source and
target images and the reason. Its own undo re-applies the reverted versions' forward
scripts (oldest first), written only when the folder has every one of them with the
checksum the plan expected, so that the roll-forward can itself be undone. Repeatable
re-applies in the plan are not copied: the folder's ``R__`` files stay as they are.

History: the reverted versions stay recorded as applied, and the roll-forward is one more
applied version; nothing is deleted. Pure: no database, no AWS, no file writes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import ConfigError
from pipeline.migrations.model import MigrationSet, Version
from pipeline.migrations.sqlsplit import SplitError, _parse_delimiter, split_statements
from pipeline.plan import Plan, PlanStep

__all__ = ["NewFile", "RollForward", "next_version", "plan_roll_forward", "roll_forward"]

FORMATS = ("flyway", "dbmate", "golang-migrate")
_DBMATE_MARKER = re.compile(r"^\s*--\s*migrate:(up|down)\b", re.M)
_DELIMITER_LINE = re.compile(r"^[ \t]*delimiter(?=[ \t\r\n]|\Z)([^\n]*)", re.M | re.I)


@dataclass(frozen=True)
class NewFile:
    """A file to create in the migration folder (never over an existing one)."""

    name: str
    text: str


@dataclass(frozen=True)
class RollForward:
    """The roll-forward migration: its version (canonical, as the history records it),
    files and what it reverts."""

    version: str
    description: str
    files: list[NewFile]
    reverted: list[str]  # newest first, as the plan undoes them
    undo_included: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "description": self.description,
            "files": [f.name for f in self.files],
            "reverted": list(self.reverted),
            "undo_included": self.undo_included,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------- versions and names


def next_version(latest: Version | None, now: datetime | None = None) -> str:
    """The version after `latest`, written in its style (see the module docstring)."""
    now = now or datetime.now(UTC)
    if latest is None:
        return "1"
    text = latest.text
    if re.fullmatch(r"(?:19|2\d)\d{12}", text):  # YYYYMMDDHHMMSS
        stamp = now.astimezone(UTC).strftime("%Y%m%d%H%M%S")
        return stamp if int(stamp) > int(text) else str(int(text) + 1)
    unix = int(now.timestamp())
    if re.fullmatch(r"1\d{9}", text) and int(text) <= unix + 366 * 86400:  # Unix seconds
        return str(max(unix, int(text) + 1))
    m = re.fullmatch(r"(.*?)(\d+)", text)
    assert m is not None  # a Version's text ends in digits
    digits = m.group(2)
    return m.group(1) + str(int(digits) + 1).zfill(len(digits))


def _description(versions: list[str]) -> str:
    ordered = sorted(versions, key=lambda v: Version.parse(v).parts)
    if len(ordered) > 3:
        return f"rollforward_of_{ordered[0]}_to_{ordered[-1]}"
    return "rollforward_of_" + "_".join(ordered)


# ---------------------------------------------------------------- script assembly


def _final_delimiter(text: str) -> str:
    delimiter = ";"
    for m in _DELIMITER_LINE.finditer(text):
        try:
            delimiter = _parse_delimiter(m.group(1), 0)
        except SplitError:
            continue
    return delimiter


def _chunk(text: str, label: str) -> tuple[str, list[str]]:
    """A script as one piece of a longer one: its last statement terminated and the
    delimiter back to ';', so the next piece splits as it did on its own. Also returns its
    statements' texts."""
    body = text.lstrip("\ufeff").strip("\n").rstrip()
    try:
        statements = split_statements(body)
    except SplitError as e:
        raise ConfigError(
            f"{label}: the script cannot be split into statements ({e})",
            hint="fix the script in the image it comes from",
        ) from None
    delimiter = _final_delimiter(body)
    if statements:
        last = statements[-1]
        line_start = 0
        for _ in range(last.line - 1):
            line_start = body.index("\n", line_start) + 1
        end = body.index(last.text, line_start) + len(last.text)
        if not body[end:].strip():  # it ran to the end of the script: no delimiter after it
            in_comment = re.search(r"--\s|#|/\*", body.rsplit("\n", 1)[-1])
            body += f"\n{delimiter}" if in_comment else delimiter
    if delimiter != ";":
        body += "\nDELIMITER ;"
    return body + "\n", [s.text for s in statements]


def _comment(text: str) -> list[str]:
    return [f"-- {line}".rstrip() for line in text.splitlines() or [""]]


def _assemble(header: list[str], pieces: list[tuple[str, str, str]]) -> str:
    """Header comments, then each (comment, text, label) piece; checks that the whole
    splits into exactly the statements of its pieces."""
    out = [*header, ""]
    expected: list[str] = []
    for comment, text, label in pieces:
        chunk, texts = _chunk(text, label)
        out += [f"-- {comment}", chunk]
        expected += texts
    script = "\n".join(out)
    try:
        got = [s.text for s in split_statements(script)]
    except SplitError as e:  # pragma: no cover - each piece split on its own
        got = [str(e)]
    if got != expected:
        raise ConfigError(
            "the scripts cannot be joined into one migration without changing how they split",
            hint="write the roll-forward by hand from the bundle's scripts (dbroll bundle show)",
        )
    return script


# ---------------------------------------------------------------- the roll-forward


def _check_plan(plan_dict: Mapping[str, Any]) -> tuple[Plan, list[PlanStep]]:
    try:
        plan = Plan.from_dict(plan_dict)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(
            f"not a dbroll plan ({e})", hint="pass a bundle from `dbroll plan --out`"
        ) from None
    steps = [s for s in plan.steps if s.action == "undo"]
    if plan.direction != "rollback" or plan.strategy != "undo" or not steps:
        raise ConfigError(
            f"the plan is a {plan.direction} plan with strategy {plan.strategy}, not a rollback "
            "with undo steps: there is nothing to roll forward",
            hint="plan the rollback with `dbroll plan --strategy undo ... --out bundle.tgz`",
        )
    if plan.blocked:
        raise ConfigError(
            "the plan is blocked: " + "; ".join(b.message for b in plan.blockers),
            hint=plan.blockers[0].hint,
        )
    return plan, steps


def plan_roll_forward(
    plan_dict: Mapping[str, Any],
    files: Mapping[str, bytes],
    mset: MigrationSet,
    reason: str | None,
    *,
    now: datetime | None = None,
) -> RollForward:
    """The roll-forward migration of a rollback plan, for the folder `mset` (see the module
    docstring). ConfigError for a plan that is not a rollback with undo steps, a folder
    without migrations or without the versions the plan reverts."""
    plan, steps = _check_plan(plan_dict)
    if mset.format not in FORMATS:
        raise ConfigError(
            f"{mset.root}: no migrations here, so no format to write the roll-forward in",
            hint="pass the migration folder of the deployed image (--migrations)",
        )
    reverted = [s.version or "?" for s in steps]
    missing = [v for v in reverted if mset.get(Version.parse(v)) is None]
    if missing:
        raise ConfigError(
            f"{mset.root} does not have version(s) {', '.join(missing)} that the plan reverts",
            hint="run roll-forward on the migration folder of the deployed image",
        )
    version_text = next_version(mset.latest, now)  # as the file name writes it
    version = str(Version.parse(version_text))  # as plans and the history write it
    description = _description(reverted)
    notes: list[str] = []

    reps = [s.source for s in plan.steps if s.action == "repeatable"]
    header = [
        f"-- roll-forward generated by dbroll: undoes version(s) {', '.join(reverted)} "
        "(newest first) as a new forward migration",
        f"-- source (deployed) image: {plan.source.label}",
        f"-- target image: {plan.target.label}",
        *_comment(f"reason: {reason or '(none given)'}"),
        f"-- the reverted versions stay recorded as applied; version {version} takes back "
        "their schema changes",
        "-- repeatable migrations (R__) are not copied: the folder's R__ files stay as they "
        "are" + (f" (the plan would have re-applied {', '.join(reps)})" if reps else ""),
    ]
    pieces = []
    for s in steps:
        data = files.get(s.path)
        if data is None:
            raise ConfigError(
                f"the plan's file {s.path} (undo of version {s.version}) is missing",
                hint="pass the whole bundle, as `dbroll plan --out` wrote it",
            )
        label = f"undo of version {s.version}"
        text = data.decode("utf-8-sig")
        pieces.append((f"{label} ({s.description}), from {s.source}", text, label))
    forward = _assemble(header, pieces)

    expected = dict(plan.expected_applied)
    undo_pieces = []
    for v in sorted(reverted, key=lambda x: Version.parse(x).parts):
        m = mset.get(Version.parse(v))
        assert m is not None
        recorded = expected.get(v)
        if recorded and recorded != m.up.sha256:
            notes.append(
                f"version {v}: {m.up.path} differs from the script the database ran "
                f"(checksum {recorded[:12]}): no undo written for the roll-forward"
            )
            continue
        label = f"version {v}"
        undo_pieces.append((f"{label} ({m.description}), from {m.up.path}", m.up.text, label))
    undo_text = None
    if len(undo_pieces) == len(reverted):
        undo_header = [
            f"-- undo of the roll-forward {version} generated by dbroll: re-applies version(s) "
            f"{', '.join(sorted(reverted, key=lambda x: Version.parse(x).parts))} "
            "(their forward scripts, oldest first)",
            *_comment(f"reason of the roll-forward: {reason or '(none given)'}"),
        ]
        undo_text = _assemble(undo_header, undo_pieces)

    transaction = all(s.transaction for s in steps)
    out = _files(mset, version_text, description, forward, undo_text, transaction)
    taken = {p.rsplit("/", 1)[-1] for m in mset.migrations for p in _paths(m)}
    for f in out:
        if f.name in taken:
            raise ConfigError(f"{f.name} exists in {mset.root}: never overwritten")
    return RollForward(version, description, out, reverted, undo_text is not None, notes)


def _paths(m: Any) -> list[str]:
    return [m.up.path] + ([m.undo.path] if m.undo else [])


def _files(
    mset: MigrationSet,
    version: str,
    description: str,
    forward: str,
    undo: str | None,
    transaction: bool,
) -> list[NewFile]:
    if mset.format == "flyway":
        name = f"{version}__{description}.sql"
        out = [NewFile(f"V{name}", forward)]
        if undo is not None:
            out.append(NewFile(f"U{name}", undo))
        return out
    if mset.format == "golang-migrate":
        stem = f"{version}_{description}"
        out = [NewFile(f"{stem}.up.sql", forward)]
        if undo is not None:
            out.append(NewFile(f"{stem}.down.sql", undo))
        return out
    # dbmate: one file, the undo in its down section
    for text in (forward, undo or ""):
        if _DBMATE_MARKER.search(text):
            raise ConfigError(
                "a script holds a '-- migrate:' line, which would cut the dbmate file in the "
                "wrong place",
                hint="write the roll-forward by hand from the bundle's scripts",
            )
    option = "" if transaction else " transaction:false"
    text = f"-- migrate:up{option}\n{forward}"
    if undo is not None:
        text += f"\n-- migrate:down{option}\n{undo}"
    return [NewFile(f"{version}_{description}.sql", text)]


def roll_forward(
    plan_dict: Mapping[str, Any],
    files: Mapping[str, bytes],
    mset: MigrationSet,
    reason: str | None,
    *,
    now: datetime | None = None,
) -> list[NewFile]:
    """The files of the roll-forward migration (see plan_roll_forward)."""
    return plan_roll_forward(plan_dict, files, mset, reason, now=now).files
