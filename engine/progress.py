"""Progress of long scans: a callback for tools that embed metrictree, a bar on a terminal.

Evaluating reads each source as a stream of record batches (`metrictree.reading.scan`) and reports,
after each batch, a `Progress`: the stage ("orders: reading"), the rows read so far and the rows
expected when the files say (Parquet and Arrow metadata; ``None`` for CSV). Every evaluation reports
— ``evaluate``, and the evaluations ``explain``, ``status`` and ``report`` run — to the callback set
with `reporting`::

    import metrictree
    from metrictree.progress import reporting

    with reporting(lambda p: print(p.stage, p.done, p.total)):
        tree.evaluate({"orders": "orders.parquet"})

The command line shows `TerminalBar` (a rich progress bar on stderr) when stderr is a terminal, only
once a scan has taken more than about a second (``METRICTREE_PROGRESS_DELAY`` seconds), and erases it
when the command is done; nothing when stderr is piped or a file, or with ``--quiet``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import IO, Any

import attrs

__all__ = ["Progress", "TerminalBar", "report", "reporting"]


@attrs.frozen
class Progress:
    """One step of a long stage.

    Attributes:
        stage: what is being done, e.g. ``"orders: reading"``.
        done: how much of it is done (in ``unit``).
        total: how much there is (``None``: not known beforehand).
        unit: what is counted, ``"rows"``.
    """

    stage: str
    done: int
    total: int | None = None
    unit: str = "rows"


Callback = Callable[[Progress], Any]
_current: ContextVar[Callback | None] = ContextVar("metrictree_progress", default=None)


@contextlib.contextmanager
def reporting(callback: Callback | None) -> Iterator[None]:
    """Send the progress of every evaluation run inside the block to ``callback`` (``None``: nowhere)."""
    token = _current.set(callback)
    try:
        yield
    finally:
        _current.reset(token)


def report(stage: str, done: int, total: int | None = None, unit: str = "rows") -> None:
    """Tell the current callback (if any) how far ``stage`` has got."""
    callback = _current.get()
    if callback is not None:
        callback(Progress(stage, done, total, unit))


def delay() -> float:
    """Seconds a stage runs before the command line shows its bar: ``METRICTREE_PROGRESS_DELAY``, default 1."""
    import os

    try:
        return max(0.0, float(os.environ.get("METRICTREE_PROGRESS_DELAY", "1")))
    except ValueError:
        return 1.0


def current() -> Callback | None:
    """The callback progress goes to in this context."""
    return _current.get()


class TerminalBar:
    """A rich progress bar on ``stream``, shown once a stage has run for ``delay`` seconds.

    Call it with each `Progress`; `close` (or leaving it as a context manager) erases it. It draws
    nothing for stages that end sooner, so quick commands print exactly what they printed before.
    """

    def __init__(self, stream: IO[str], delay: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.delay = delay
        self.clock = clock
        self._bar = None
        self._tasks: dict[str, Any] = {}
        self._began: dict[str, float] = {}
        self.shown = False

    def __call__(self, progress: Progress) -> None:
        now = self.clock()
        began = self._began.setdefault(progress.stage, now)
        if self._bar is None:
            if now - began < self.delay:
                return
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                       TimeElapsedColumn)

            console = Console(file=self.stream, force_terminal=True, highlight=False, emoji=False)
            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn(progress.unit), TimeElapsedColumn(), console=console,
                                     transient=True, refresh_per_second=8)
            self._bar.start()
            self.shown = True
        task = self._tasks.get(progress.stage)
        if task is None:
            task = self._tasks[progress.stage] = self._bar.add_task(progress.stage, total=progress.total)
        self._bar.update(task, completed=progress.done, total=progress.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> TerminalBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
