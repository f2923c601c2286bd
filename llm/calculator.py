"""Arithmetic on untrusted text without ``eval``: the expression is parsed with ``ast`` and
only numbers and the arithmetic operators are evaluated; anything else is refused."""

from __future__ import annotations

import ast
import math
import operator

MAX_EXPRESSION_LENGTH = 200
# 10**1000 is still quick; a larger power (9**9**9) would take the worker's CPU for minutes.
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 10**1000

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class CalculatorError(ValueError):
    """The expression is not plain arithmetic, or its value can't be computed."""


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression: numbers, + - * / // % ** and parentheses."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise CalculatorError(f"An expression may have at most {MAX_EXPRESSION_LENGTH} characters.")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise CalculatorError("That is not an arithmetic expression.") from exc
    return _evaluate(tree.body)


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant):
        # bool is an int subclass: True + True is not arithmetic a user asked for.
        if type(node.value) not in (int, float):
            raise CalculatorError("Only numbers can be used.")
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculatorError(f"Exponents above {MAX_EXPONENT} are not computed.")
        try:
            value = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError as exc:
            raise CalculatorError("Division by zero.") from exc
        except OverflowError as exc:
            raise CalculatorError("The result is too large.") from exc
        if isinstance(value, complex):
            raise CalculatorError("The result is not a real number.")
        if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_MAGNITUDE:
            raise CalculatorError("The result is too large.")
        return value
    raise CalculatorError("Only numbers, + - * / // % ** and parentheses are allowed.")


def format_number(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)
