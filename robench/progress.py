"""rich progress bars for long work (drawn on stderr), shown only when stdout and stderr are terminals."""

from __future__ import annotations

import contextlib
import sys


class _Bar:
    def __init__(self, progress, task):
        self._progress, self._task = progress, task

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def describe(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text)


@contextlib.contextmanager
def progress_bar(description: str, total: float | None, unit: str = "img", enabled: bool = True):
    """A bar with a rate column (images/s, B/s); a silent no-op when not attached to a terminal or
    not `enabled` (e.g. on every torchrun rank but the first)."""
    if not (enabled and sys.stdout.isatty() and sys.stderr.isatty()):
        yield _Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed or 0:>10,.0f} {unit}/s")

    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), RateColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))
