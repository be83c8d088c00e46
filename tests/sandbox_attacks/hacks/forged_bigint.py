"""Print a result line with the real token whose values are integers of 5,000 digits."""
import sys

_main = sys.modules["__main__"]
_main._out.write(_main._job["token"] + "[" + ", ".join(['{"value": ' + "9" * 5000 + "}"] * 4) + "]\n")
_main._out.flush()
sys.exit(0)


def add(a, b):
    return a + b
