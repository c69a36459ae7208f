"""The calculator example's evaluator: Python's arithmetic, and nothing else ever runs."""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentvisor.agent import ToolResult
from tests.unit.agent.example_files import load_example

calculator = load_example("calculator_agent")
evaluate: Callable[[str], int | float] = calculator.evaluate
CalculatorError: type[Exception] = calculator.CalculatorError

# An expression tree: a number, (unary op, tree), or (binary op, tree, tree).
Tree = Any

numbers = st.integers(0, 10**6) | st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
trees: st.SearchStrategy[Tree] = st.recursive(
    numbers,
    lambda children: st.one_of(
        st.tuples(st.sampled_from(["-", "+"]), children),
        st.tuples(st.sampled_from(["+", "-", "*", "/", "%"]), children, children),
        # Powers of a number by a small exponent: results stay small enough to compute.
        st.tuples(st.just("**"), numbers, st.integers(0, 4)),
    ),
    max_leaves=12,
)

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
    "**": operator.pow,
}


class Undefined(Exception):
    """Python's arithmetic has no finite real value for this tree."""


def render(tree: Tree) -> str:
    if isinstance(tree, int | float):
        return repr(tree)
    if len(tree) == 2:
        return f"({tree[0]}{render(tree[1])})"
    return f"({render(tree[1])} {tree[0]} {render(tree[2])})"


def reference(tree: Tree) -> int | float:
    """The tree's value by Python's own operators, step by step."""
    if isinstance(tree, int | float):
        return tree
    try:
        if len(tree) == 2:
            value = -reference(tree[1]) if tree[0] == "-" else +reference(tree[1])
        else:
            value = BINARY[tree[0]](reference(tree[1]), reference(tree[2]))
    except (ZeroDivisionError, OverflowError):
        raise Undefined from None
    if isinstance(value, float) and not math.isfinite(value):
        raise Undefined
    return value  # type: ignore[no-any-return]


@given(trees)
def test_expressions_evaluate_like_python_arithmetic(tree: Tree) -> None:
    try:
        expected = reference(tree)
    except Undefined:
        with pytest.raises(CalculatorError):
            evaluate(render(tree))
        return
    result = evaluate(render(tree))
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2 + 3 * 4", 14),
        ("-2 ** 2", -4),
        ("2 ** -1", 0.5),
        ("2 ** 3 ** 2", 512),
        ("(1 + 2) * 3", 9),
        ("-7 % 3", 2),
        ("10 / 4", 2.5),
        ("  +1.5 - -1  ", 2.5),
    ],
)
def test_precedence_and_unary_minus_follow_python(expression: str, value: float) -> None:
    assert evaluate(expression) == value


NOT_ARITHMETIC = [
    "x",
    "__import__('os').system('true')",
    "open('/etc/passwd')",
    "(lambda: 1)()",
    "agentvisor_sentinel()",
    "__builtins__",
    "().__class__",
    "[1][0]",
    "'a'",
    "b'1'",
    "f'{1}'",
    "1 if 1 else 2",
    "1 < 2",
    "not 1",
    "1 and 2",
    "True",
    "None",
    "...",
    "1j",
    "2 // 1",
    "~1",
    "1 << 2",
    "1 @ 2",
    "{1: 2}",
    "(y := 1)",
]


@given(
    trees,
    st.sampled_from(NOT_ARITHMETIC),
    st.sampled_from(["{e} + ({f})", "({f}) * {e}", "-({f})", "{e} ** ({f})", "{f}"]),
)
def test_anything_that_is_not_arithmetic_is_rejected_and_never_run(
    tree: Tree, snippet: str, shape: str
) -> None:
    calls: list[object] = []
    builtins.agentvisor_sentinel = lambda: calls.append(1)  # type: ignore[attr-defined]
    try:
        with pytest.raises(CalculatorError, match=r"not arithmetic|not an arithmetic"):
            evaluate(shape.format(e=render(tree), f=snippet))
    finally:
        del builtins.agentvisor_sentinel  # type: ignore[attr-defined]
    assert calls == []


@given(st.text(max_size=60) | st.text(alphabet="0123456789+-*/%().e_ ", max_size=40))
def test_any_text_gives_a_number_or_a_calculator_error(text: str) -> None:
    try:
        result = evaluate(text)
    except CalculatorError:
        return
    assert isinstance(result, int | float)
    assert not isinstance(result, bool)


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("9 ** 9 ** 9", "too large"),
        ("1e308 * 10", "too large"),
        ("1e999", "too large"),
        ("(-8) ** 0.5", "not a real number"),
        ("-" * 500 + "1", "nested deeper"),
        ("1 +" * 400 + "1", "longer than"),
        ("", "not an arithmetic expression"),
    ],
)
def test_values_that_cannot_be_computed_are_errors(expression: str, error: str) -> None:
    with pytest.raises(CalculatorError, match=error):
        evaluate(expression)


async def test_the_tool_reports_errors_as_failed_results() -> None:
    tool = calculator.CalculatorTool()
    assert await tool.run({"expression": "(17 + 4) * 3 / 7"}) == ToolResult(
        output="(17 + 4) * 3 / 7 = 9.0"
    )
    assert await tool.run({"expression": "1/0"}) == ToolResult(
        success=False, error="1/0: division by zero"
    )
