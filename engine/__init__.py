"""metrictree: a declarative metric-tree engine.

    >>> import metrictree
    >>> tree = metrictree.load("trees/crm_ltv.tree")                # doctest: +SKIP
    >>> table = tree.evaluate({"orders": "orders.parquet"}, by=["region"])  # doctest: +SKIP

The public API is what this module exports; everything else may change.
"""

from __future__ import annotations

from .compiling import check, load, loads
from .evaluating import Evaluation, NullReason, null_reasons
from .errors import (
    CompileError,
    DataError,
    Diagnostic,
    MetrictreeError,
    PluginError,
    Span,
    TreeSyntaxError,
    UsageError,
)
from .functions import Aggregate, AggregateContext, Computed, Library, Partial, Scalar, TreeFile
from .hookspecs import hookimpl
from .model import Alert, Link, Metric, Param, Source, Target, Tree
from .parsing import parse
from .rules import AlertStatus, Checkpoint, MetricValue, Status, TargetStatus

__version__ = "0.1.0"

__all__ = [
    "Aggregate", "AggregateContext", "Alert", "CompileError", "Computed", "DataError", "Diagnostic", "Library",
    "Link", "Metric", "MetrictreeError", "Param", "Partial", "PluginError", "Scalar", "Source", "Span", "Target",
    "Evaluation", "NullReason", "Tree", "TreeFile", "TreeSyntaxError", "UsageError", "check", "hookimpl", "load", "loads",
    "null_reasons", "parse", "AlertStatus", "Checkpoint", "MetricValue", "Status", "TargetStatus",
]
