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

import ast
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


# What a self-play proposal may be written in: the generator's grammar, widened to what an integer
# function of x needs, and nothing that reads the world (no imports, attributes, strings, files,
# clocks, randomness, hashing, or names beyond its own variables and these builtins).
ALLOWED_BUILTINS = frozenset({"range", "abs", "min", "max", "divmod", "pow", "int", "bool", "True", "False"})
ALLOWED_NODES = (
    ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Return, ast.Assign, ast.AugAssign, ast.If,
    ast.For, ast.While, ast.Break, ast.Continue, ast.Pass, ast.Expr, ast.Name, ast.Load, ast.Store,
    ast.Constant, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call, ast.Tuple,
    ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)


def impurity(source: str) -> str | None:
    """Why `source` is not a pure integer function `def f(x):` by the allow-list above, or None.

    Allowed: one top-level `def f(x):` whose body uses assignments, `if`/`for`/`while`, arithmetic,
    comparisons and boolean logic on integers, tuples (for `a, b = divmod(...)`), its own local
    names, and calls to the builtins in ALLOWED_BUILTINS. Everything else is refused by name:
    imports, attribute access (`os.x`, `().__class__`), strings and floats, subscripts, comprehensions,
    lambdas, nested functions, `global`, and any other name (`open`, `hash`, `id`, `__import__`)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        return f"does not parse ({type(e).__name__})"
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef) or tree.body[0].name != "f":
        return "not a single `def f(x):`"
    fn = tree.body[0]
    a = fn.args
    if [p.arg for p in a.args] != ["x"] or a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg or a.defaults \
            or fn.decorator_list or fn.returns:
        return "f must take exactly one plain argument x"
    local = {"x"} | {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for node in ast.walk(fn):
        if not isinstance(node, ALLOWED_NODES) or (isinstance(node, ast.FunctionDef) and node is not fn):
            return f"uses {type(node).__name__}, which a proposal may not"
        if isinstance(node, ast.Constant) and type(node.value) not in (int, bool):
            return f"uses a {type(node.value).__name__} constant; only integers are allowed"
        if isinstance(node, ast.Name) and node.id not in local | ALLOWED_BUILTINS:
            return f"uses the name {node.id!r}, which is neither its own variable nor an allowed builtin"
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            return f"uses the name {node.id!r}"
        if isinstance(node, ast.Call):
            func = node.func
            callee = repr(func.id) if isinstance(func, ast.Name) else f"an expression ({type(func).__name__})"
            if callee.strip("'") not in ALLOWED_BUILTINS:
                return f"calls {callee}, which is not an allowed builtin"
            if node.keywords:
                return "calls a builtin with keyword arguments"
    return None
