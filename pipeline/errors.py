"""One exception tree: every user-facing failure is a DbrollError.

Each error carries the process exit code the CLI uses and an optional hint that says
what to do next. Anything that is not a DbrollError is a bug and shows its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3
EXIT_BUSY = 4
# stopped by a signal: 128 + its number, what a shell or ECS reports for a process it killed
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)
EXIT_TERMINATED = 143  # SIGTERM


class DbrollError(Exception):
    """Root of every error dbroll reports to a user."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(DbrollError):
    """Bad flags, environment or configuration (exit 2)."""

    exit_code = EXIT_USAGE


class MigrationFileError(ConfigError):
    """A migration folder or file that cannot be read as a migration set (exit 2).

    `path` names the file (or folder) at fault.
    """

    def __init__(self, path: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}", hint=hint)
        self.path = path


class BlockedError(DbrollError):
    """The database or plan needs a human decision before anything runs (exit 3)."""

    exit_code = EXIT_BLOCKED


class ChecksumDriftError(BlockedError):
    """An applied script's file changed since it was applied (exit 3)."""


class HistoryGapError(BlockedError):
    """The database has an applied version inside the local range that no file has (exit 3)."""


class BusyError(DbrollError):
    """Another runner holds the database lock (exit 4)."""

    exit_code = EXIT_BUSY


class DatabaseError(DbrollError):
    """The database refused or failed an operation (exit 1)."""


class MigrationFailedError(DatabaseError):
    """A migration statement failed; the history row records where (exit 1)."""

    def __init__(
        self,
        message: str,
        *,
        version: str | None,
        statement: int,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.version = version
        self.statement = statement


class ConnectionLostError(MigrationFailedError):
    """The connection running a migration statement was lost: the server may have finished
    it without us, so history keeps the server's own record (the event stays running)."""


class LockWaitError(MigrationFailedError):
    """A DDL statement kept timing out on a metadata lock held by another session."""


class AwsError(DbrollError):
    """An AWS call failed; `resource` names what it was about (exit 1)."""

    def __init__(self, resource: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{resource}: {message}", hint=hint)
        self.resource = resource


class NotFoundError(ConfigError):
    """A named image, manifest, bundle or AWS resource does not exist (exit 2)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM: ECS StopTask or a deployment replacing the task, `docker stop`, a supervisor.

    Raised in the main thread by the CLI's SIGTERM handler, and a KeyboardInterrupt so that
    it takes Ctrl-C's way out: statements sent to the server are interrupted, the records of
    migrations that finished go in, connections close, then the process exits 143. Without
    it SIGTERM would end the process at once and leave its packet running on the server.
    """
