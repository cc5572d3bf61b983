"""The Arrow backend: read the source's columns into Arrow, aggregate them in this process."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .. import aggregating, reading
from ..aggregating import SourceAggregate


class ArrowBackend:
    """Tables, files, datasets and DataFrames, through `reading.scan` and `aggregating.aggregate_stream`."""

    name = "arrow"

    def aggregate(self, request, data: Mapping[str, Any], counts: dict[str, int] | None = None,
                  riders: Sequence[Any] = ()) -> SourceAggregate:
        """``request``'s partials; ``riders`` (`backends.Rider`): requests of the same source and time range
        aggregated from the very tables this scan hands on, on a thread of their own (`_Tee`): each one's
        ``result`` is what a scan of its own would give, or stays ``None``."""
        source = request.source
        dims = [d for d in request.by if d in source.dimensions]
        # The rows stream through the partial aggregation a few million at a time (`reading.scan`), so the
        # memory held is the partial state (groups, distinct pairs), not the rows.
        pieces = reading.scan(source, data, list(request.needs), dims, request.since, request.until, counts,
                              rows_per_table=reading.table_rows())
        riding = [r for r in riders if r.request.source.name == source.name and
                  (r.request.since, r.request.until) == (request.since, request.until)]
        if not riding:
            return aggregating.aggregate_stream(request.tree, source, pieces, list(request.metrics), request.grain,
                                                list(request.by), request.params, request.registry)
        tee = _Tee(pieces, riding, counts)
        try:
            return aggregating.aggregate_stream(request.tree, source, tee, list(request.metrics), request.grain,
                                                list(request.by), request.params, request.registry)
        finally:
            tee.stop()


_DONE = object()  # the end of the pieces handed to a rider


class _Tee:
    """The pieces of one scan, each handed on to the caller and to every rider's aggregation (a thread each,
    which holds at most `_WAITING` pieces it has not aggregated yet).

    A rider's aggregation is the rider's own `aggregate_stream` over the same tables in the same order, so its
    result is exactly that of a scan of its own of the same rows (the same time range, the same cuts into
    tables: `reading.scan` cuts a source where its row groups or batches end, whatever the columns). It gets a
    result only when it has seen every piece; an error in it leaves the result ``None`` (the rider's caller
    then reads the rows itself, and meets the error there)."""

    _WAITING = 2

    def __init__(self, pieces: Iterator, riders: Sequence[Any], counts: dict[str, int] | None) -> None:
        self._pieces = iter(pieces)
        self._counts = counts
        self._complete = False
        self._stopped = False
        self._lock = threading.Lock()
        self._riders = []
        for rider in riders:
            waiting: queue.Queue = queue.Queue(maxsize=self._WAITING)
            state = {"rider": rider, "queue": waiting, "alive": True}
            context = contextvars.copy_context()
            state["thread"] = threading.Thread(target=context.run, args=(self._ride, state),
                                               name="metrictree-rider", daemon=True)
            self._riders.append(state)
        for state in self._riders:
            state["thread"].start()

    def __iter__(self) -> _Tee:
        return self

    def __next__(self):
        try:
            piece = next(self._pieces)
        except StopIteration:
            self._complete = True
            raise
        if piece.last:
            self._complete = True
        for state in self._riders:
            self._put(state, piece)
        return piece

    def _put(self, state: dict, item) -> None:
        # A rider that stopped (an error, or the end) takes nothing more: never wait for it.
        while state["alive"]:
            try:
                state["queue"].put(item, timeout=0.05)
                return
            except queue.Full:
                continue
        if item is _DONE:
            # Its scan may still wait for a piece (an error in its aggregation, not in its scan): the end wakes it.
            try:
                state["queue"].put_nowait(_DONE)
            except queue.Full:
                pass

    def _ride(self, state: dict) -> None:
        rider = state["rider"]
        request = rider.request

        def pieces():
            while True:
                item = state["queue"].get()
                if item is _DONE:
                    if not self._complete:
                        raise _Incomplete
                    return
                yield item

        try:
            result = aggregating.aggregate_stream(request.tree, request.source, pieces(), list(request.metrics),
                                                  request.grain, list(request.by), request.params,
                                                  request.registry)
        except BaseException:  # noqa: BLE001 — the rider's caller reads the rows itself and meets any error there
            result = None
        state["alive"] = False
        if result is not None:
            rider.result = result
            rider.null_times = (self._counts or {}).get("null_times")

    def stop(self) -> None:
        """The end of the pieces: each rider finishes its aggregation (with a result only if it saw every
        piece), and is waited for."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        for state in self._riders:
            self._put(state, _DONE)
        for state in self._riders:
            state["thread"].join()


class _Incomplete(Exception):
    """The scan ended before its last piece (an error in the caller's aggregation): no rider result."""
