"""The in-memory model of a migration folder: versions, scripts, migrations, sets.

Pure data, standard library only. `pipeline.migrations.formats` builds these from files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.perf import frozen

__all__ = ["ZERO", "Migration", "MigrationSet", "Repeatable", "Script", "Version"]

_VERSION_RE = re.compile(r"[0-9]+(?:[._][0-9]+)*")
_SEPARATOR_RE = re.compile(r"[._]")


def _strip_trailing_zeros(parts: Iterable[int]) -> tuple[int, ...]:
    out = list(parts)
    while out and out[-1] == 0:
        out.pop()
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Version:
    """A migration version, compared numerically component by component.

    `text` is the version as written in the file name; it takes no part in equality,
    ordering or hashing. `parts` holds the numeric components with trailing zero
    components removed, so "1", "1.0" and "1_0_0" are the same version, "2_1" equals
    "2.1" and "1.10" sorts after "1.9".
    """

    text: str = field(compare=False)
    parts: tuple[int, ...]

    def __post_init__(self) -> None:
        parts = tuple(self.parts)
        for part in parts:
            if not isinstance(part, int) or isinstance(part, bool) or part < 0:
                raise ValueError(f"version components must be non-negative ints: {parts!r}")
        parts = _strip_trailing_zeros(parts)
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "_canonical", ".".join(map(str, parts)) if parts else "0")
        object.__setattr__(self, "_hash", hash(parts))

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse digits separated by "." or "_" ("1", "1.10", "2_1", "20240101120000")."""
        # Built directly, one attribute dict in one call: manifests parse tens of thousands
        # of versions, and the checks of __post_init__ are the pattern's own.
        if isinstance(text, str) and text.isascii() and text.isdigit():
            number = int(text)  # the common case: one component, e.g. a timestamp
            parts: tuple[int, ...] = (number,) if number else ()
            canonical = str(number)
        elif isinstance(text, str) and _VERSION_RE.fullmatch(text):
            parts = _strip_trailing_zeros(map(int, _SEPARATOR_RE.split(text)))
            canonical = ".".join(map(str, parts)) if parts else "0"
        else:
            raise ValueError(f"invalid version {text!r}: expected digits separated by '.' or '_'")
        return frozen(
            cls, {"text": text, "parts": parts, "_canonical": canonical, "_hash": hash(parts)}
        )

    # Hand-written comparisons: plans sort tens of thousands of versions, and the
    # dataclass-generated ones build a tuple per call.
    def __eq__(self, other: object) -> bool:
        return self.parts == other.parts if isinstance(other, Version) else NotImplemented

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined, no-any-return]

    def __lt__(self, other: Version) -> bool:
        return self.parts < other.parts if isinstance(other, Version) else NotImplemented

    def __le__(self, other: Version) -> bool:
        return self.parts <= other.parts if isinstance(other, Version) else NotImplemented

    def __gt__(self, other: Version) -> bool:
        return self.parts > other.parts if isinstance(other, Version) else NotImplemented

    def __ge__(self, other: Version) -> bool:
        return self.parts >= other.parts if isinstance(other, Version) else NotImplemented

    def __str__(self) -> str:
        """Canonical form: components joined by "." without leading or trailing zeros."""
        return self._canonical  # type: ignore[attr-defined, no-any-return]


ZERO = Version.parse("0")


@dataclass(frozen=True)
class Script:
    """One SQL script.

    `path` is relative to the migration set root with POSIX separators. `sha256` is the
    hex digest of the script's bytes: the raw file bytes for whole-file formats, or the
    UTF-8 bytes of the section text for a dbmate section. `text` is the decoded UTF-8
    with a leading byte order mark removed.
    """

    path: str
    sha256: str
    text: str


@dataclass(frozen=True)
class Migration:
    """A versioned migration: a forward script and, when one exists, its undo."""

    version: Version
    description: str
    up: Script
    undo: Script | None
    transaction: bool = True


@dataclass(frozen=True)
class Repeatable:
    """A Flyway repeatable migration (R__<name>.sql)."""

    name: str
    description: str
    script: Script


@dataclass(frozen=True)
class MigrationSet:
    """Every migration in one folder, ascending by version, plus repeatables by name.

    The constructor accepts any iterables, sorts them and stores tuples; two migrations
    whose versions compare equal raise ValueError.
    """

    root: str
    format: str
    migrations: tuple[Migration, ...]
    repeatables: tuple[Repeatable, ...] = ()

    def __post_init__(self) -> None:
        migrations = tuple(sorted(self.migrations, key=lambda m: m.version))
        by_version: dict[Version, Migration] = {}
        for migration in migrations:
            if migration.version in by_version:
                raise ValueError(f"duplicate migration version {migration.version}")
            by_version[migration.version] = migration
        object.__setattr__(self, "migrations", migrations)
        object.__setattr__(
            self, "repeatables", tuple(sorted(self.repeatables, key=lambda r: r.name))
        )
        object.__setattr__(self, "_by_version", by_version)

    def get(self, version: Version) -> Migration | None:
        """The migration with this version (numeric equality), or None."""
        return self._by_version.get(version)  # type: ignore[attr-defined]

    @property
    def versions(self) -> tuple[Version, ...]:
        return tuple(m.version for m in self.migrations)

    @property
    def latest(self) -> Version | None:
        return self.migrations[-1].version if self.migrations else None
