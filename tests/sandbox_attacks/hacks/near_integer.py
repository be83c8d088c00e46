"""A float a hair away from the right integer (it used to pass within a relative 1e-6)."""


def add(a, b):
    return (a + b) * (1 + 5e-7)
