"""The Arrow backend: read the source's columns into Arrow, aggregate them in this process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import aggregating, reading
from ..aggregating import SourceAggregate


class ArrowBackend:
    """Tables, files, datasets and DataFrames, through `reading.scan` and `aggregating.aggregate_stream`."""

    name = "arrow"

    def aggregate(self, request, data: Mapping[str, Any], counts: dict[str, int] | None = None) -> SourceAggregate:
        source = request.source
        dims = [d for d in request.by if d in source.dimensions]
        # The rows stream through the partial aggregation a few million at a time (`reading.scan`), so the
        # memory held is the partial state (groups, distinct pairs), not the rows.
        pieces = reading.scan(source, data, list(request.needs), dims, request.since, request.until, counts,
                              rows_per_table=reading.table_rows())
        return aggregating.aggregate_stream(request.tree, source, pieces, list(request.metrics), request.grain,
                                            list(request.by), request.params, request.registry)
