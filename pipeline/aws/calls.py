"""A record of every AWS call a command makes; in read-only mode, mutating calls are refused.

`dbroll rollback --dry-run` attaches one to every client it creates: the read calls it made
are printed, and a write (RunTask, UpdateService, PutObject, ...) raises before it is sent,
so a dry run cannot change anything even if the code path were wrong.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import DbrollError

READ_PREFIXES = ("Describe", "List", "Get", "Head", "BatchGet", "Filter", "Lookup")


class DryRunWrite(DbrollError):
    """A dry run reached a call that would change something (a bug: exit 1, nothing sent)."""


def _summary(params: dict[str, Any]) -> str:
    parts = []
    for key in sorted(params):
        value = params[key]
        if key in ("Body", "SecretString", "SecretBinary"):
            value = "<bytes>"
        text = value if isinstance(value, str) else repr(value)
        parts.append(f"{key}={text if len(text) <= 80 else text[:77] + '...'}")
    return " ".join(parts)


class AwsCallLog:
    def __init__(self, *, read_only: bool) -> None:
        self.read_only = read_only
        self.calls: list[str] = []

    def attach(self, client: Any) -> Any:
        service = client.meta.service_model.service_name
        client.meta.events.register(
            f"before-parameter-build.{service}",
            lambda params, model, **_: self._before(service, model.name, params),
        )
        return client

    def _before(self, service: str, operation: str, params: dict[str, Any]) -> None:
        line = f"{service}:{operation} {_summary(params)}".rstrip()
        if self.read_only and not operation.startswith(READ_PREFIXES):
            raise DryRunWrite(
                f"dry run: refused to send {service}:{operation}; nothing was changed",
                hint="this is a dbroll bug: please report the command line",
            )
        self.calls.append(line)
