"""Terminal output that is safe for attacker-controlled strings.

Log fields come from the network: a user name or user agent can carry ANSI escape sequences
or Rich markup meant to repaint an analyst's terminal. Everything shown passes through
:func:`safe`, which replaces control characters with visible escapes and bounds the length, and
is rendered as :class:`rich.text.Text` (never parsed as markup).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MAX_CELL = 200


def safe(value: Any, limit: int = MAX_CELL) -> str:
    """Printable text of ``value``: control characters escaped, at most ``limit`` characters."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, float):
        text = f"{value:,.2f}"
    else:
        text = str(value)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A Rich table whose every cell is plain text."""
    out = Table(title=Text(title), header_style="bold", expand=False)
    for col in columns:
        out.add_column(Text(col), overflow="fold")
    for row in rows:
        out.add_row(*(Text(safe(v)) for v in row))
    return out


def to_json(data: Any) -> str:
    """JSON for ``--json`` output (times as ISO 8601)."""
    return json.dumps(data, indent=2, sort_keys=True, default=_default, ensure_ascii=True)


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def console(stderr: bool = False) -> Console:
    """A console that never interprets markup or emoji codes in what it prints."""
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=True)
