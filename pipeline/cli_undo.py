"""dbroll undo-generation and roll-forward commands (registered on the main group by pipeline.cli)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the dbroll group."""
