"""The ``derive`` language: ``+ - * /`` over column names and numbers, parsed and bounded.

A config's ``derive`` expression is user input, so it is parsed here without ``eval`` and bounded
before anything is built from it: its length, the number of terms, the nesting depth and the size of
each number literal. The config checks every expression when it is loaded (a bad one fails before any
data is read); :func:`customer_value.io.evaluate_expression` evaluates the parsed tree.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

__all__ = ["MAX_CHARS", "MAX_DEPTH", "MAX_NODES", "MAX_LITERAL", "ExpressionError", "Parsed", "parse"]

MAX_CHARS = 1_000  # a real expression is a line: Quantity * UnitPrice - Discount
MAX_NODES = 200  # numbers, names and operators together
MAX_DEPTH = (
    40  # nesting of parentheses and operators; keeps evaluation far from Python's recursion limit
)
MAX_LITERAL = 1e15  # larger constants are typos (or attempts to overflow), not prices or factors

ALLOWED = "column names, numbers, parentheses and + - * / only"


class ExpressionError(ValueError):
    """A ``derive`` expression that is not in the language or is out of bounds."""


@dataclass(frozen=True)
class Parsed:
    """A checked expression: its syntax tree and the column each placeholder name stands for."""

    tree: ast.Expression
    names: dict[str, str]

    def columns(self) -> list[str]:
        """The column names the expression uses, in order of appearance, without repeats."""
        seen: list[str] = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name):
                col = self.names.get(node.id, node.id)
                if col not in seen:
                    seen.append(col)
        return seen


def _rewrite(text: str) -> tuple[str, dict[str, str]]:
    """Replace each ```quoted name``` by a placeholder identifier Python can parse."""
    names: dict[str, str] = {}
    out, i = [], 0
    while i < len(text):
        if text[i] == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise ExpressionError("a backquoted column name is not closed")
            key = f"__col{len(names)}"
            names[key] = text[i + 1 : j]
            out.append(key)
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out), names


def _check_tree(tree: ast.Expression) -> None:
    """Walk iteratively (no recursion) and refuse what is outside the language or its bounds."""
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"it has more than {MAX_NODES} terms and operators")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"it is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
            right = node.right.operand if isinstance(node.right, ast.UnaryOp) else node.right
            if isinstance(node.op, ast.Div) and isinstance(right, ast.Constant) and right.value == 0:
                raise ExpressionError("it divides by the constant 0")
            stack += [(node.left, depth + 1), (node.right, depth + 1)]
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            stack.append((node.operand, depth + 1))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            value = node.value
            if isinstance(value, int) and value.bit_length() > 64:
                raise ExpressionError(f"the number {str(value)[:20]}... is too large")
            if not math.isfinite(float(value)) or abs(value) > MAX_LITERAL:
                raise ExpressionError(f"the number {value!r} is out of range (|x| <= {MAX_LITERAL:g})")
        elif isinstance(node, ast.Name):
            continue
        else:
            raise ExpressionError(f"it uses something other than {ALLOWED}")


def parse(expr: str) -> Parsed:
    """Parse and bound a ``derive`` expression.

    Parameters
    ----------
    expr : str
        E.g. ``"Quantity * UnitPrice"``; backquotes allow names with spaces (```Unit Price` * 2``).

    Returns
    -------
    Parsed
        The checked syntax tree and the names of its backquoted columns.

    Raises
    ------
    ExpressionError
        Not in the language (calls, attributes, strings, ``**``), not valid syntax, longer than
        :data:`MAX_CHARS`, more than :data:`MAX_NODES` terms, nested deeper than :data:`MAX_DEPTH`,
        or a literal beyond :data:`MAX_LITERAL`.

    Examples
    --------
    >>> parse("(a + `b b`) / 2").columns()
    ['a', 'b b']
    """
    if not isinstance(expr, str) or not expr.strip():
        raise ExpressionError("the expression is empty")
    if len(expr) > MAX_CHARS:
        raise ExpressionError(f"it is {len(expr):,} characters long (at most {MAX_CHARS:,})")
    text, names = _rewrite(expr)
    # Counting operators first bounds the parser's own work and recursion on long sums.
    operators = sum(text.count(op) for op in "+-*/(")
    if operators > MAX_NODES:
        raise ExpressionError(f"it has more than {MAX_NODES} terms and operators")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExpressionError(f"it is not valid arithmetic ({ALLOWED})") from None
    _check_tree(tree)
    return Parsed(tree, names)
