"""`rsi search`: a population of normal runs searching the recipe on Ray Tune (`rsi.search.driver`)."""
