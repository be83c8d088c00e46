"""Double-fork a setsid daemon that outlives the program and would write a file later."""
import os
import time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(1)
        os.close(2)
        time.sleep(3)
        open("/tmp/rsi-escape-daemon", "w").write("still alive")
        os._exit(0)
    os._exit(0)
os.wait()
print("parent done")
