"""Print a result line with the real token, nested thousands of levels deep (the host must not raise)."""
import sys

_main = sys.modules["__main__"]
_main._out.write(_main._job["token"] + "[" * 20000 + "]" * 20000 + "\n")
_main._out.flush()
sys.exit(0)


def add(a, b):
    return a + b
