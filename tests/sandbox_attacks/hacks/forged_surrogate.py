"""Print a result line whose error names hold lone surrogates (the ledger cannot store them as they are)."""
import sys

_main = sys.modules["__main__"]
_main._out.write(_main._job["token"]
                 + '[{"error": "\\ud800"}, {"error": "\\udfff"}, {"value": "\\ud800"}, {"value": 0}]\n')
_main._out.flush()
sys.exit(0)


def add(a, b):
    return a + b
