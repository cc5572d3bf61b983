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

    def _pair(self, node: s.Expr, fill: bool) -> tuple[float | None, float | None]:
        return self.values(self._filled(node) if fill else node)

    def _filled(self, node: s.Expr) -> s.Expr:
        """The expression with every input that has no value counted as 0: ``coalesce(input, 0)``."""
        if self.leaf(node) is not None:
            return s.Call("coalesce", (node, s.Literal(0.0)), span=node.span)
        children = node.children()
        return _with_children(node, [self._filled(c) for c in children]) if children else node

    def _distribute(self, node: s.Expr, b: float | None, c: float | None, amount: float | None, out: dict,
                    fill: bool = False) -> str:
        ref = self.leaf(node)
        if ref is not None:
            out[ref] = out.get(ref, 0.0) + (amount or 0.0)
            return "leaf"
        if isinstance(node, s.Literal) or amount is None or amount == 0.0:
            return "constant" if isinstance(node, s.Literal) else "none"
        if isinstance(node, s.Name):
            return "constant"  # a param: it does not change between the states
        if b is None or c is None:
            if fill:
                return "undefined"
            # A part with no value in one state (m[-1] before the data starts) still carries the amount its
            # parent gave it (coalesce and if choose another value there): split it as a change from zero,
            # where every input with no value counts as 0.
            fb, fc = self._pair(node, True)
            return self._distribute(node, fb, fc, amount, out, fill=True)
        change = c - b
        if abs(change) <= _TINY * max(abs(b), abs(c), 1.0):
            return "none"
        scale = amount / change
        if isinstance(node, s.Binary) and node.op in ("+", "-") or isinstance(node, s.Unary) and node.op == "-":
            terms: list = []
            _flatten(node, ("+", "-"), 1, terms)
            for term, sign in terms:
                tb, tc = self._pair(term, fill)
                if tb is not None and tc is not None:
                    self._distribute(term, tb, tc, scale * sign * (tc - tb), out, fill)
            return "additive"
        if isinstance(node, s.Binary) and node.op in ("*", "/"):
            factors: list = []
            _flatten(node, ("*", "/"), 1, factors)
            values = [self._pair(f, fill) for f, _ in factors]
            if all(fb and fc and (fb > 0) == (fc > 0) for fb, fc in values) and b and c and (b > 0) == (c > 0):
                weights = [sign * math.log(fc / fb) for (_, sign), (fb, fc) in zip(factors, values, strict=True)]
                mean = log_mean(c, b)
                for (factor, _), weight, (fb, fc) in zip(factors, weights, values, strict=True):
                    self._distribute(factor, fb, fc, scale * mean * weight, out, fill)
                return "lmdi"
            return self._shapley(node, [f for f, _ in factors], b, c, scale, out, fill, product=factors)
        if isinstance(node, s.Call) and node.name == "coalesce" and not node.kwargs and node.args:
            return self._coalesce(node, amount, out, fill)
        if isinstance(node, s.Call) and node.name in ("max", "min") and len(node.args) > 1 and not node.kwargs:
            pairs = [self._pair(a, fill) for a in node.args]
            if all(pb is not None and pc_ is not None for pb, pc_ in pairs):
                sign = 1.0 if node.name == "max" else -1.0
                phi = shapley_of_max([sign * pb for pb, _ in pairs], [sign * pc_ for _, pc_ in pairs])
                for arg, (pb, pc_), share in zip(node.args, pairs, phi, strict=True):
                    self._distribute(arg, pb, pc_, scale * sign * share, out, fill)
                return "shapley"
        return self._shapley(node, list(node.children()), b, c, scale, out, fill)

    def _coalesce(self, node: s.Call, amount: float, out: dict, fill: bool) -> str:
        """coalesce(a, b, …) is the first argument with a value: exactly that argument's change when the same
        one is chosen in both states; when the choice moves from P to Q, P's own change up to the point of the
        switch and Q the rest (the values that switch compares: P and Q in the same state)."""
        pairs = [self._pair(a, fill) for a in node.args]
        chosen = [next((i for i, pair in enumerate(pairs) if pair[state] is not None), None) for state in (0, 1)]
        kb, kc = chosen
        if kb is None or kc is None or kb == kc:
            k = kc if kb is None else kb
            if k is None:
                return "none"
            pb, pc_ = pairs[k]
            self._distribute(node.args[k], pb, pc_, amount, out, fill)
            return "coalesce"
        (pb, pc_), (qb, qc) = pairs[kb], pairs[kc]
        change = qc - pb
        if not change:
            return "none"
        if pc_ is not None:
            parts = ((kb, pc_ - pb), (kc, qc - pc_))
        elif qb is not None:
            parts = ((kc, qc - qb), (kb, qb - pb))
        else:  # P disappears, Q appears
            parts = ((kb, -pb), (kc, qc))
        for k, part in parts:
            arg_b, arg_c = pairs[k]
            self._distribute(node.args[k], arg_b, arg_c, amount * part / change, out, fill)
        return "coalesce"

    def _shapley(self, node: s.Expr, children: list[s.Expr], b: float, c: float, scale: float, out: dict,
                 fill: bool = False, product: list | None = None) -> str:
        n = len(children)
        if n == 0:
            return "none"
        pairs = [self._pair(child, fill) for child in children]
        raws = [self._raw(self._filled(child) if fill else child) for child in children]
        exact = n <= MAX_EXACT_SHAPLEY
        masks = list(range(1 << n)) if exact else _sampled_masks(n)
        arrays = {}
        for i, (cb, cc) in enumerate(raws):
            kind = pa.bool_() if isinstance(cb, bool) or isinstance(cc, bool) else pa.float64()
            arrays[f"__arg{i}"] = pa.array([cc if mask >> i & 1 else cb for mask in masks], kind)
        placeholders = [s.Name(f"__arg{i}") for i in range(n)]
        if product is not None:
            expr: s.Expr = placeholders[0] if product[0][1] > 0 else s.Binary("/", s.Literal(1), placeholders[0])
            for placeholder, (_, sign) in zip(placeholders[1:], product[1:], strict=True):
                expr = s.Binary("*" if sign > 0 else "/", expr, placeholder)
        else:
            expr = _with_children(node, placeholders)
        result = evaluate(expr, self.scope_for(arrays, len(masks)))
        values = [_number(v) for v in (result.to_pylist() if not isinstance(result, pa.Scalar)
                                       else [result.as_py()] * len(masks))]
        if any(v is None for v in values):
            # Some mixes meet an input with no value (if() choosing a branch that is null in the other state):
            # count such inputs as 0; the check below keeps the split only if the mixes still give both states.
            return "undefined" if fill else self._shapley(node, children, b, c, scale, out, True, product)
        phi = shapley(values, n) if exact else _sampled_shapley(values, n)
        # The values are differences of the mixes, whose rounding errors scale with the largest of them (a
        # product whose factors swing far past both states): the check is relative to that, not to the states.
        if abs(sum(phi) - (c - b)) > 1e-9 * max(abs(b), abs(c), 1.0, *(abs(v) for v in values)):
            return "undefined"  # the mixes do not reproduce the two states: no split rather than a wrong one
        for child, (cb, cc), share in zip(children, pairs, phi, strict=True):
            self._distribute(child, cb, cc, scale * share, out, fill)
        return "shapley" if exact else "shapley-sampled"


MAX_EXACT_SHAPLEY = 10
"""Exact Shapley values evaluate a function on 2ⁿ mixes of its arguments; past this many arguments (1,024
mixes) they are estimated from `SHAPLEY_PERMUTATIONS` random orders instead (the method says
``shapley-sampled``). Each order's contributions add up to the change, so the estimate does too."""

SHAPLEY_PERMUTATIONS = 64


def _orders(n: int) -> list[list[int]]:
    import random

    rng = random.Random(n)  # the same estimate on every run
    orders = []
    for _ in range(SHAPLEY_PERMUTATIONS):
        order = list(range(n))
        rng.shuffle(order)
        orders.append(order)
    return orders


def _sampled_masks(n: int) -> list[int]:
    """For each sampled order, the n + 1 states met by switching its players to current one at a time."""
    masks = []
    for order in _orders(n):
        mask = 0
        masks.append(mask)
        for player in order:
            mask |= 1 << player
            masks.append(mask)
    return masks


def _sampled_shapley(values: list[float], n: int) -> list[float]:
    result = [0.0] * n
    for k, order in enumerate(_orders(n)):
        row = k * (n + 1)
        for step, player in enumerate(order):
            result[player] += values[row + step + 1] - values[row + step]
    return [v / SHAPLEY_PERMUTATIONS for v in result]


def shapley_of_max(baseline: list[float], current: list[float]) -> list[float]:
    """Exact Shapley values of ``max(x₁ … xₙ)`` moving from ``baseline`` to ``current``, in O(n²) not O(2ⁿ).

    ``max(x) = t₀ + ∫ 1[max(x) > t] dt`` from the smallest value up. For one threshold ``t`` the game
    ``1[max > t]`` is constant when some argument is above ``t`` in both states; otherwise, with ``k``
    arguments above ``t`` only in the baseline (down) and ``m`` only in the current state (up), the game is 0
    only while every down argument has switched and no up one has; counting the orders in which a player's
    switch changes that gives ``−1 / ((k+m)·C(k+m−1, m))`` for each down argument and
    ``+1 / ((k+m)·C(k+m−1, k))`` for each up one.
    Integrating over the thresholds between consecutive values gives the Shapley values.

    >>> [round(v, 9) for v in shapley_of_max([1.0, 5.0], [4.0, 2.0])]
    [1.0, -2.0]
    """
    n = len(baseline)
    result = [0.0] * n
    levels = sorted(set(baseline) | set(current))
    for low, high in zip(levels, levels[1:], strict=False):
        t = low  # the game is constant for thresholds in [low, high)
        if any(b > t and c > t for b, c in zip(baseline, current, strict=True)):
            continue
        down = [i for i in range(n) if baseline[i] > t >= current[i]]
        up = [i for i in range(n) if current[i] > t >= baseline[i]]
        k, m = len(down), len(up)
        if not k and not m:
            continue
        width = high - low
        for i in down:
            result[i] -= width / ((k + m) * math.comb(k + m - 1, m))
        for i in up:
            result[i] += width / ((k + m) * math.comb(k + m - 1, k))
    return result


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


__all__ = ["Decomposer", "Split", "log_mean", "shapley", "shapley_of_max"]
