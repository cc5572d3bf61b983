"""metrictree: a declarative metric-tree engine.

    >>> import metrictree
    >>> tree = metrictree.load("trees/crm_ltv.tree")                # doctest: +SKIP
    >>> table = tree.evaluate({"orders": "orders.parquet"}, by=["region"])  # doctest: +SKIP

The public API is what this module exports; everything else may change.
"""

from __future__ import annotations

from . import allocator

allocator.configure()  # before anything loads pyarrow: mimalloc reads its options then

from .compiling import check, load, loads
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
from .model import Alert, Link, Metric, Param, Source, Target
from .parsing import parse
from .tree import Tree

__version__ = "0.1.0"

# Imported on first use, so that `metrictree check` and `import metrictree` do not load the evaluation
# stack (pyarrow.dataset, which imports pandas when it is installed).
_LAZY = {"Evaluation": "evaluating", "NullReason": "evaluating", "Skipped": "evaluating",
         "null_reasons": "evaluating", "AlertStatus": "rules", "Checkpoint": "rules",
         "MetricValue": "rules", "Status": "rules", "TargetStatus": "rules"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'metrictree' has no attribute {name!r}")

__all__ = [
    "Aggregate", "AggregateContext", "Alert", "CompileError", "Computed", "DataError", "Diagnostic", "Library",
    "Link", "Metric", "MetrictreeError", "Param", "Partial", "PluginError", "Scalar", "Source", "Span", "Target",
    "Evaluation", "NullReason", "Tree", "TreeFile", "TreeSyntaxError", "UsageError", "check", "hookimpl", "load", "loads",
    "null_reasons", "parse", "AlertStatus", "Checkpoint", "MetricValue", "Status", "TargetStatus",
]
