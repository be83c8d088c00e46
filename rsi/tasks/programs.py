"""Short random programs `def f(x): ... return y` over integers, for the code tasks.

The grammar has assignments (`+ - * // %` on variables and constants, never `y * y`), `if/else`
on a comparison, and `for i in range(k)` with a constant k of 2 to 4, so a program generated
here terminates quickly, with numbers of bounded size, on any input the generator draws. That
is why `run_trusted` may run *these* programs in the rsi process to compute ground truth;
anything a model writes, or any input a model chooses, runs only in the sandbox.

Difficulty d sets the knobs: d statements at the top level (blocks nest inside them), nesting
depth min(2, (d - 1) // 3), constants and inputs below 10 ** (1 + d // 4).

    >>> import random
    >>> print(random_program(random.Random(0), 2))   # doctest: +SKIP
    def f(x):
     y = x * 3
     y = y % 7
     return y
"""

from __future__ import annotations

import random

OPS = ("+", "-", "*", "//", "%")
COMPARE = ("<", ">", "==", "!=")


def knobs(difficulty: int) -> tuple[int, int, int]:
    """(statements, nesting depth, value bound) at a difficulty."""
    return difficulty, min(2, (difficulty - 1) // 3), 10 ** (1 + difficulty // 4)


def random_program(rng: random.Random, difficulty: int) -> str:
    statements, depth, bound = knobs(difficulty)
    lines = ["def f(x):", " y = x"]
    for _ in range(statements):
        lines += _statement(rng, depth, bound, indent=1, loop_vars=())
    lines.append(" return y")
    return "\n".join(lines)


def random_input(rng: random.Random, difficulty: int) -> int:
    bound = knobs(difficulty)[2]
    return rng.randrange(-bound, bound)


def _operand(rng: random.Random, bound: int, names: tuple[str, ...]) -> str:
    pool = ["x", *names]
    return rng.choice(pool) if rng.random() < 0.5 else str(rng.randrange(1, bound))


def _assign(rng: random.Random, bound: int, pad: str, loop_vars: tuple[str, ...]) -> str:
    op = rng.choice(OPS)
    if op in ("//", "%"):
        right = str(rng.randrange(2, max(3, bound)))
    else:  # never y * y: repeated squaring in a loop would grow numbers without bound
        right = _operand(rng, bound, loop_vars if op == "*" else ("y", *loop_vars))
    return f"{pad}y = y {op} {right}"


def _statement(rng: random.Random, depth: int, bound: int, indent: int, loop_vars: tuple[str, ...]) -> list[str]:
    pad = " " * indent
    kind = rng.choice(("assign", "assign", "if", "for")) if depth > 0 else "assign"
    if kind == "assign":
        return [_assign(rng, bound, pad, loop_vars)]
    if kind == "if":
        cond = f"y % {rng.randrange(2, 5)} {rng.choice(COMPARE)} {rng.randrange(0, 2)}"
        return [f"{pad}if {cond}:", *_statement(rng, depth - 1, bound, indent + 1, loop_vars),
                f"{pad}else:", *_statement(rng, depth - 1, bound, indent + 1, loop_vars)]
    var = "ij"[len(loop_vars) % 2]
    return [f"{pad}for {var} in range({rng.randrange(2, 5)}):",
            *_statement(rng, depth - 1, bound, indent + 1, (*loop_vars, var))]


def run_trusted(source: str, x: int) -> int:
    """f(x) for a program made by `random_program` (never for model-written code)."""
    namespace: dict = {"__builtins__": {"range": range}}
    exec(compile(source, "<generated>", "exec"), namespace)
    return namespace["f"](x)
