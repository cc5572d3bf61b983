"""The Arrow backend: read the source's columns into Arrow, aggregate them in this process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import aggregating, reading
from ..aggregating import SourceAggregate


class ArrowBackend:
    """Tables, files, datasets and DataFrames, through `reading.read` and `aggregating.aggregate`."""

    name = "arrow"

    def aggregate(self, request, data: Mapping[str, Any], counts: dict[str, int] | None = None) -> SourceAggregate:
        source = request.source
        dims = [d for d in request.by if d in source.dimensions]
        table = reading.read(source, data, list(request.needs), dims, request.since, request.until, counts)
        return aggregating.aggregate(request.tree, source, table, list(request.metrics), request.grain,
                                     list(request.by), request.params, request.registry)
