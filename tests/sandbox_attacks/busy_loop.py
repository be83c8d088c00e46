"""Spin past the CPU limit."""
while True:
    pass
