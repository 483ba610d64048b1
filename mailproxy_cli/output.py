"""How results are printed: a table by default, exactly one JSON document with ``--json``.

Tables show timestamps (``*_ts`` fields) as local dates and elide long values; ``payload`` and
``history`` columns are left out of lists unless ``--full`` is given.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

ELIDE_AT = 60
LIST_ELIDE_AT = 32
_HIDDEN_IN_LISTS = ("payload", "history")


def emit_json(result: Any) -> None:
    """Print ``result`` as one compact JSON document on stdout."""
    click.echo(json.dumps(result, ensure_ascii=False))


def _cell(key: str, value: Any, *, full: bool, limit: int = ELIDE_AT) -> str:
    if value is None:
        return "-"
    if (
        key.endswith(("_ts", "_at"))
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if not full and len(text) > limit:
        return f"{text[: limit - 1]}…"
    return text


def _console() -> Any:
    from rich.console import Console

    width = None if sys.stdout.isatty() else 1000  # piped: never cut a value
    return Console(width=width, highlight=False, soft_wrap=False)


def emit_table(result: Any, *, full: bool = False) -> None:
    """Print ``result`` for a reader: a table for objects and lists of objects."""
    if isinstance(result, str):
        click.echo(result)
        return
    if isinstance(result, list) and result and all(isinstance(row, dict) for row in result):
        _list_table(result, full=full)
        return
    if isinstance(result, list):
        for item in result:
            click.echo(_cell("", item, full=full))
        if not result:
            click.echo("(none)")
        return
    if isinstance(result, dict):
        _object_table(result, full=full)
        return
    click.echo(json.dumps(result))


def _list_table(rows: list[dict[str, Any]], *, full: bool) -> None:
    from rich.table import Table

    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    if not full:
        # Payloads and columns empty in every row only take room.
        columns = [
            key
            for key in columns
            if key not in _HIDDEN_IN_LISTS and any(row.get(key) is not None for row in rows)
        ]
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for key in columns:
        table.add_column(key, overflow="ellipsis", no_wrap=True, min_width=min(len(key), 12))
    for row in rows:
        table.add_row(
            *(_cell(key, row.get(key), full=full, limit=LIST_ELIDE_AT) for key in columns)
        )
    _print(table)
    hidden = [key for key in _HIDDEN_IN_LISTS if any(key in row for row in rows) and not full]
    note = f" ({', '.join(hidden)} left out: --full shows them)" if hidden else ""
    click.echo(f"{len(rows)} row{'s' if len(rows) != 1 else ''}{note}", err=True)


def _object_table(obj: dict[str, Any], *, full: bool) -> None:
    from rich.table import Table

    table = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in obj.items():
        table.add_row(key, _cell(key, value, full=full))
    _print(table)


def _print(renderable: Any) -> None:
    console = _console()
    with console.capture() as captured:
        console.print(renderable)
    lines = [line.rstrip() for line in captured.get().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    click.echo("\n".join(lines))


def emit(result: Any, *, as_json: bool, full: bool = False) -> None:
    """Print ``result`` as JSON (``--json``) or as a table."""
    if as_json:
        emit_json(result)
    else:
        emit_table(result, full=full)


def stderr_console() -> Any:
    """A rich console writing to stderr (progress bars)."""
    from rich.console import Console

    return Console(stderr=True)
