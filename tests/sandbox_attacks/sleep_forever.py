"""Sleep past the wall-clock limit."""
import time

time.sleep(10**6)
