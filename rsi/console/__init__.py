"""`rsi serve`: a local web console to watch runs, review promotions, label what the vote could not,
add problems and stop a run. `rsi.console.app` is the application, `rsi.console.guard` its access
rules, `rsi.console.reads` what its pages show; every write goes through the CLI's own functions.
"""

from rsi.console.app import create_app

__all__ = ["create_app"]
