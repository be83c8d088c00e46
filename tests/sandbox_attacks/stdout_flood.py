"""Flood stdout: the host reads up to the cap, then ends the run."""
import sys

while True:
    sys.stdout.write("x" * 65536)
