"""A calculator agent: arithmetic a model should not do in its head.

``evaluate`` reads the expression with ``ast`` and computes only numbers and
``+ - * / ** %`` (with parentheses and unary minus); anything else — names,
calls, attributes, strings — is refused before anything runs, so an
expression cannot do more than arithmetic. ``eval`` is never used.
Run it with ``agentvisor serve examples/calculator_agent.py --port 8082``
and ask "What is (17 + 4) * 3 / 7?".
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from agentvisor.agent import BaseTool, ToolResult, create_react_agent, default_llm

MAX_EXPRESSION_CHARS = 1000
MAX_DEPTH = 100
MAX_INT_BITS = 100_000  # about 30,000 decimal digits: a result, not a memory hog

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}

# An arithmetic expression inside a sentence: operands joined by at least one operator.
_OPERAND = r"[-+]?\(*\s*[-+]?\d+(?:\.\d+)?\s*\)*"
EXPRESSION_PATTERN = rf"{_OPERAND}(?:\s*(?:\*\*|[-+*/%])\s*{_OPERAND})+"


class CalculatorError(ValueError):
    """The expression is not arithmetic, or its value cannot be computed."""


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression, computed without ``eval``."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise CalculatorError(f"not an arithmetic expression: {expression!r}") from None
    _refuse_non_arithmetic(tree, expression.strip())
    return _value(tree.body, 0)


def _refuse_non_arithmetic(tree: ast.Expression, source: str) -> None:
    """Reject the whole expression before computing any of it if any node is not arithmetic."""
    for node in ast.walk(tree):  # iterative: deep trees cannot exhaust the stack here
        allowed = (
            isinstance(node, ast.Expression | ast.operator | ast.unaryop)
            or (isinstance(node, ast.BinOp) and type(node.op) in _BINARY)
            or (isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY)
            or (
                isinstance(node, ast.Constant)
                and isinstance(node.value, int | float)
                and not isinstance(node.value, bool)  # an int subclass, but True is no number
            )
        )
        if not allowed:
            snippet = ast.get_source_segment(source, node) or type(node).__name__
            raise CalculatorError(f"not arithmetic: {snippet[:60]!r} is not allowed")


def _value(node: ast.AST, depth: int) -> Number:
    """Compute a tree ``_refuse_non_arithmetic`` accepted."""
    if depth > MAX_DEPTH:
        raise CalculatorError(f"expression nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.Constant):
        return _checked(node.value)  # 1e999 is a float literal too: inf
    if isinstance(node, ast.UnaryOp):
        return _checked(_UNARY[type(node.op)](_value(node.operand, depth + 1)))
    if isinstance(node, ast.BinOp):
        left = _value(node.left, depth + 1)
        right = _value(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        try:
            return _checked(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        except OverflowError:
            raise CalculatorError("the result is too large") from None
    raise AssertionError(f"unchecked node {node!r}")  # _refuse_non_arithmetic lets none through


def _check_power(base: Number, exponent: Number) -> None:
    """Refuse powers whose result would take ages or gigabytes (``9 ** 9 ** 9``)."""
    if not (isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1):
        return
    if exponent * max(abs(base).bit_length() - 1, 1) > MAX_INT_BITS:
        raise CalculatorError("the result is too large")


def _checked(value: Any) -> Number:
    if isinstance(value, complex):  # (-8) ** 0.5
        raise CalculatorError("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("the result is too large")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError("the result is too large")
    return value  # type: ignore[no-any-return]


class CalculatorTool(BaseTool):
    name = "calculate"
    description = "Evaluate an arithmetic expression with + - * / ** % and parentheses."
    parameters = {
        "type": "object",
        "properties": {
            "expression": {
                "type": "string",
                "description": "The expression, e.g. (17 + 4) * 3 / 7",
                "pattern": EXPRESSION_PATTERN,
            }
        },
        "required": ["expression"],
    }

    async def execute(self, expression: str) -> ToolResult:
        try:
            value = evaluate(expression)
        except CalculatorError as exc:
            return ToolResult(success=False, error=f"{expression}: {exc}")
        return ToolResult(output=f"{expression.strip()} = {value}")


def create_agent() -> Any:
    return create_react_agent(
        name="calculator",
        tools=[CalculatorTool()],
        system_prompt="Use the calculate tool for any arithmetic; never compute in your head.",
        max_steps=5,
        llm=default_llm(),
    )
