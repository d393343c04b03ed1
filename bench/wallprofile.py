"""Where a dbroll run's wall-clock time goes, from py-spy's samples.

`py-spy record --idle --nolineno --format raw` writes one line per distinct stack: the
frames from the outermost in, `;`-separated, each `function (file)`, then a space and how
many samples had that stack (an empty stack: the interpreter starting or exiting). With
--idle every sample counts, waiting included, so samples / rate is wall-clock time.

Each stack goes to the first class whose rule matches it (KINDS, in order). The harness
(`make bench`, `make profile`) runs the recording; this module only reads it, and has no
side effects, so tests import it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

# (key, label), in the order classify() tries their rules: the first that matches a stack wins
KINDS: tuple[tuple[str, str], ...] = (
    (
        "socket",
        "in a socket call: a statement on its way to MariaDB, or waiting for its result "
        "(the server's time, as the client sees it)",
    ),
    ("startup", "start-up: the interpreter, imports"),
    (
        "load",
        "reading the migration files, the history and the checks before the first statement",
    ),
    (
        "spare",
        "spare time: log lines and splitting the next script, done while the server runs "
        "a statement",
    ),
    ("between", "between statements: building packets and history writes, reading results"),
    ("other", "other: command line, logging set-up, the summary, exit"),
)
LABELS = dict(KINDS)

# frames whose code is a blocking socket call: send (sendall in pymysql's _write_bytes,
# where a 2-core machine often hands the CPU to the server mid-call) and receive (socket.py)
_SOCKET_LEAVES = ("Connection._write_bytes (pymysql/", "SocketIO.readinto (socket.py)")
_LOAD = ("load_migration_set (", "Runner._read_history (", "Runner._check (")


def classify(frames: list[str]) -> str:
    """The KINDS key of one sampled stack (frames outermost first)."""
    if not frames:
        return "startup"
    leaf = frames[-1]
    if leaf.startswith(_SOCKET_LEAVES) or leaf.endswith("(socket.py)"):
        return "socket"
    if any(f.startswith("_find_and_load (") for f in frames):
        return "startup"
    if any(f.startswith(_LOAD) for f in frames):
        return "load"
    if any(f.startswith("Runner._spare_time (") for f in frames):
        return "spare"
    if any(f.startswith("Runner._run_steps (") for f in frames):
        return "between"
    return "other"


def parse_collapsed(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    """(frames, samples) per record of py-spy's raw (collapsed) output: `frame;frame;... N`.
    A frame's name may span lines (py-spy 0.4.3 once named a class body's frame after a
    multi-line string of it), so a record ends at the first line that ends in a count. One
    left without a count at the end is a format py-spy no longer writes: ValueError names
    the line it began on."""
    out = []
    buf: list[str] = []
    start = 0
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not buf:
            if not line.strip():
                continue  # a blank line between records
            start = n
        buf.append(line)
        stack, sep, count = line.rpartition(" ")
        if sep and count.isdigit():
            stack = "\n".join([*buf[:-1], stack])
            out.append(([f for f in stack.split(";") if f.strip()], int(count)))
            buf = []
    if buf:
        raise ValueError(f"line {start} of the py-spy output has no sample count: {buf[0][:120]!r}")
    return out


def tally(lines: Iterable[str]) -> Counter[tuple[str, str]]:
    """Samples per (KINDS key, innermost frame) of a recording, parsed and classed once;
    tallies of several runs add up with `+` (or Counter.update)."""
    c: Counter[tuple[str, str]] = Counter()
    for frames, n in parse_collapsed(lines):
        c[classify(frames), frames[-1] if frames else "(no Python frame)"] += n
    return c


def breakdown(t: Counter[tuple[str, str]]) -> Counter[str]:
    """Samples per KINDS key (every key present, zero when unseen)."""
    c: Counter[str] = Counter({k: 0 for k, _ in KINDS})
    for (kind, _), n in t.items():
        c[kind] += n
    return c


def top_frames(t: Counter[tuple[str, str]], kind: str, k: int = 5) -> list[tuple[str, int]]:
    """The innermost frames where samples of one class fell most often: where to look next."""
    return Counter({leaf: n for (kd, leaf), n in t.items() if kd == kind}).most_common(k)
