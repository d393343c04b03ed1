"""structlog setup: console on a TTY, JSON lines otherwise; secret redaction everywhere.

Library modules only do ``log = structlog.get_logger(__name__)``. Logs go to stderr;
results go to stdout. Every string that reaches a log line, an error message or a
rendered result passes through :func:`redact`, which removes registered secret values
(passwords parsed from DSNs, secret-manager payloads) and the password part of any URL.
JSON (log lines, ``--json`` results: :func:`redact_json`) is redacted value by value before
it is serialised, never as text: a secret such as ``false``, ``1234`` or ``socket`` would
otherwise replace a literal or a key, and one with a ``"`` or a non-ASCII character would
not match its escaped form.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

import structlog

_SECRETS: set[str] = set()
# _SECRETS longest first, so that a secret containing another is masked whole
_BY_LENGTH: list[str] = []
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@"
)
_SENSITIVE_KEYS = re.compile(r"pass(word)?|secret|token|credential", re.I)
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it would be printed."""
    if value and len(value) >= 3 and value not in _SECRETS:
        _SECRETS.add(value)
        _BY_LENGTH[:] = sorted(_SECRETS, key=len, reverse=True)


def redact(text: str) -> str:
    """Mask registered secrets and URL passwords in `text`."""
    if not text:
        return text
    if "://" in text:  # every log value passes here: skip the regex when it cannot match
        text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    for secret in _BY_LENGTH:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        return MASK if _SENSITIVE_KEYS.search(key) else redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(key, v) for v in value)
    if isinstance(value, BaseException):
        return redact(str(value))
    return value


def _redact_strings(value: Any) -> Any:
    """`value` with :func:`redact` applied to every string in it (not to keys, numbers,
    booleans or None)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_strings(v) for v in value]
    return value


def redact_json(data: Any, **dumps_kw: Any) -> str:
    """``json.dumps(data, **dumps_kw)`` with secrets masked in its string values (and in
    what ``default`` makes of other objects): the JSON stays valid."""
    default = dumps_kw.pop("default", None)

    def fallback(obj: Any) -> Any:
        if default is None:
            raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
        return _redact_strings(default(obj))

    return json.dumps(_redact_strings(data), default=fallback, **dumps_kw)


def _json_default(obj: Any) -> Any:
    # what structlog's JSONRenderer makes of an object JSON has no type for, redacted
    render = getattr(obj, "__structlog__", None)
    return _redact_strings(render() if callable(render) else repr(obj))


def _redact_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: _redact_value(k, v) for k, v in event_dict.items()}


def _redact_rendered(_logger: Any, _name: str, rendered: Any) -> Any:
    # tracebacks and exception text are rendered late; mask them once more as text
    return redact(rendered) if isinstance(rendered, str) else rendered


def configure(fmt: str = "auto", level: str = "info", stream: Any = None) -> None:
    """Configure structlog once for the process.

    fmt: "console", "json" or "auto" (console when stderr is a TTY, JSON lines otherwise).
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_processor,
    ]
    if fmt == "json":
        # redacted as values (tracebacks too, once dict_tracebacks made them values), never
        # as rendered text: see the module docstring
        renderer: list[Any] = [
            structlog.processors.dict_tracebacks,
            _redact_processor,
            structlog.processors.JSONRenderer(default=_json_default),
        ]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=stream.isatty()), _redact_rendered]
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
