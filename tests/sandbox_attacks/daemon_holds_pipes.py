"""A daemon keeps stdout open after the program exits: the run must still end at once."""
import os
import time

if os.fork() == 0:
    os.setsid()
    time.sleep(60)
    os._exit(0)
print("parent done")
