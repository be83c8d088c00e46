"""Recurse until the C stack overflows: the interpreter crashes, the crash is contained."""
import sys

sys.setrecursionlimit(10**8)


def down(n):
    return down(n + 1) + 1


down(0)
