"""Exact attribution of a formula's change to its inputs, one operator at a time.

Given the values of every input of a formula in two states (baseline, current), split
the formula's change into one contribution per input so that the contributions add
up to the change exactly. The method depends on the operator:

* ``+`` and ``−`` (and unary minus): the change of each term, with its sign — exact.
* ``×`` and ``÷``: log-mean Divisia (LMDI-I). For ``y = Π xᵢ^aᵢ``,
  ``cᵢ = L(y₁, y₀) · aᵢ · ln(xᵢ₁ / xᵢ₀)`` with the logarithmic mean
  ``L(a, b) = (a − b) / (ln a − ln b)``; the cᵢ add up to ``y₁ − y₀`` exactly and do not
  depend on the order of the factors. It needs every factor non-zero and of one sign
  in both states; otherwise the node falls back to Shapley values.
* anything else (functions, ``if``, comparisons, plugin functions): exact Shapley
  values over the node's arguments, computed from the function evaluated on all
  2ⁿ mixes of baseline and current arguments (vectorised: one call on 2ⁿ rows).

Nested expressions are handled by passing each node's contribution down to its
children in proportion to the children's contributions to that node's own change
(the chain rule of attribution), so the leaves' contributions still add up to the
top's change. A node whose own change is 0 passes 0 down.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
import attrs
import pyarrow as pa

from . import syntax as s
from .formulas import Scope, evaluate

# Relative size under which a node's change counts as no change (float rounding).
_TINY = 1e-12

Ref = Hashable


@attrs.frozen
class Split:
    """Contributions of the leaves of one formula to its change.

    Attributes:
        contributions: leaf reference → contribution, in the formula's units.
        methods: the method used at the top operator (``additive``, ``lmdi``, ``shapley``, ``leaf``).
    """

    contributions: dict
    method: str


def log_mean(a: float, b: float) -> float:
    """The logarithmic mean of two numbers of one sign (``L(a, a) = a``)."""
    if a == b:
        return a
    if a < 0 and b < 0:
        return -log_mean(-a, -b)
    return (a - b) / (math.log(a) - math.log(b))


def shapley(values: list[float], n: int) -> list[float]:
    """Shapley values of ``n`` players from ``values[mask]`` = the outcome when the players in ``mask`` are current."""
    weights = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]
    result = [0.0] * n
    for i in range(n):
        bit = 1 << i
        total = 0.0
        for mask in range(1 << n):
            if not mask & bit:
                total += weights[bin(mask).count("1")] * (values[mask | bit] - values[mask])
        result[i] = total
    return result


def _flatten(node: s.Expr, op_set: tuple[str, str], sign: int, out: list) -> None:
    """Flatten an associative chain: a + b − c → [(a, +1), (b, +1), (c, −1)]; likewise for × and ÷."""
    if isinstance(node, s.Binary) and node.op in op_set:
        _flatten(node.left, op_set, sign, out)
        _flatten(node.right, op_set, sign if node.op == op_set[0] else -sign, out)
    elif op_set[0] == "+" and isinstance(node, s.Unary) and node.op == "-":
        _flatten(node.operand, op_set, -sign, out)
    else:
        out.append((node, sign))


def _with_children(node: s.Expr, children: list[s.Expr]) -> s.Expr:
    match node:
        case s.Binary():
            return attrs.evolve(node, left=children[0], right=children[1])
        case s.Unary():
            return attrs.evolve(node, operand=children[0])
        case s.Call():
            args = tuple(children[: len(node.args)])
            kwargs = tuple((k, v) for (k, _), v in zip(node.kwargs, children[len(node.args):], strict=True))
            return attrs.evolve(node, args=args, kwargs=kwargs)
        case s.InList():
            return attrs.evolve(node, operand=children[0], items=tuple(children[1:]))
        case s.IsNull():
            return attrs.evolve(node, operand=children[0])
    raise TypeError(f"no children to replace in {node!r}")  # pragma: no cover


@attrs.define
class Decomposer:
    """Splits the change of formulas evaluated in two states.

    Attributes:
        scope_for: builds a `Scope` over ``length`` rows whose names and shifts resolve to
            the values of the two states (row 0 baseline, row 1 current) — or, for the
            placeholder names ``__argN``, to the arrays given.
        leaf: ``node -> reference`` for nodes that are inputs (metric names, shifts,
            opaque window calls); ``None`` for everything else.
    """

    scope_for: Callable[[dict[str, pa.Array], int], Scope]
    leaf: Callable[[s.Expr], Ref | None]

    def values(self, node: s.Expr) -> tuple[float | None, float | None]:
        """The node's value in the baseline and the current state (booleans as 0/1)."""
        pair = self._raw(node)
        return _number(pair[0]), _number(pair[1])

    def _raw(self, node: s.Expr) -> list:
        result = evaluate(node, self.scope_for({}, 2))
        return [result.as_py()] * 2 if isinstance(result, pa.Scalar) else result.to_pylist()

    def split(self, node: s.Expr, contribution: float | None = None) -> Split:
        """Split ``contribution`` (default: the node's own change) among the node's leaves."""
        b, c = self.values(node)
        change = None if b is None or c is None else c - b
        total = change if contribution is None else contribution
        out: dict = {}
        method = self._distribute(node, b, c, total, out)
        # Inputs that did not move (or sit under a part that did not) still appear, with 0.
        ordered = {}
        stack = [node]
        while stack:
            child = stack.pop()
            ref = self.leaf(child)
            if ref is not None:
                ordered[ref] = out.get(ref, 0.0)
            else:
                stack.extend(reversed(child.children()))
        return Split(ordered, method)

    def _distribute(self, node: s.Expr, b: float | None, c: float | None, amount: float | None, out: dict) -> str:
        ref = self.leaf(node)
        if ref is not None:
            out[ref] = out.get(ref, 0.0) + (amount or 0.0)
            return "leaf"
        if isinstance(node, s.Literal) or amount is None or amount == 0.0:
            return "constant" if isinstance(node, s.Literal) else "none"
        if isinstance(node, s.Name):
            return "constant"  # a param: it does not change between the states
        if b is None or c is None:
            return "undefined"
        change = c - b
        if abs(change) <= _TINY * max(abs(b), abs(c), 1.0):
            return "none"
        scale = amount / change
        if isinstance(node, s.Binary) and node.op in ("+", "-") or isinstance(node, s.Unary) and node.op == "-":
            terms: list = []
            _flatten(node, ("+", "-"), 1, terms)
            for term, sign in terms:
                tb, tc = self.values(term)
                if tb is not None and tc is not None:
                    self._distribute(term, tb, tc, scale * sign * (tc - tb), out)
            return "additive"
        if isinstance(node, s.Binary) and node.op in ("*", "/"):
            factors: list = []
            _flatten(node, ("*", "/"), 1, factors)
            values = [self.values(f) for f, _ in factors]
            if all(fb and fc and (fb > 0) == (fc > 0) for fb, fc in values) and b and c and (b > 0) == (c > 0):
                weights = [sign * math.log(fc / fb) for (_, sign), (fb, fc) in zip(factors, values, strict=True)]
                mean = log_mean(c, b)
                for (factor, _), weight, (fb, fc) in zip(factors, weights, values, strict=True):
                    self._distribute(factor, fb, fc, scale * mean * weight, out)
                return "lmdi"
            return self._shapley(node, [f for f, _ in factors], scale, out, product=factors)
        return self._shapley(node, list(node.children()), scale, out)

    def _shapley(self, node: s.Expr, children: list[s.Expr], scale: float, out: dict,
                 product: list | None = None) -> str:
        n = len(children)
        pairs = [self.values(child) for child in children]
        if n == 0:
            return "none"
        size = 1 << n
        arrays = {}
        for i, child in enumerate(children):
            cb, cc = self._raw(child)
            bit = 1 << i
            kind = pa.bool_() if isinstance(cb, bool) or isinstance(cc, bool) else pa.float64()
            arrays[f"__arg{i}"] = pa.array([cc if mask & bit else cb for mask in range(size)], kind)
        placeholders = [s.Name(f"__arg{i}") for i in range(n)]
        if product is not None:
            expr: s.Expr = placeholders[0] if product[0][1] > 0 else s.Binary("/", s.Literal(1), placeholders[0])
            for placeholder, (_, sign) in zip(placeholders[1:], product[1:], strict=True):
                expr = s.Binary("*" if sign > 0 else "/", expr, placeholder)
        else:
            expr = _with_children(node, placeholders)
        result = evaluate(expr, self.scope_for(arrays, size))
        values = [_number(v) for v in (result.to_pylist() if not isinstance(result, pa.Scalar)
                                       else [result.as_py()] * size)]
        if any(v is None for v in values):
            return "undefined"
        phi = shapley(values, n)
        for child, (cb, cc), share in zip(children, pairs, phi, strict=True):
            self._distribute(child, cb, cc, scale * share, out)
        return "shapley"


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


__all__ = ["Decomposer", "Split", "log_mean", "shapley"]
