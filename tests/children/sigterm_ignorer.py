"""Ignore SIGTERM, start a grandchild (same process group) that ignores it too.

Prints ``{"pid": ..., "grandchild": ...}`` once both run, then sleeps: only
SIGKILL to the group ends them.
"""

import json
import os
import signal
import subprocess
import sys
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "--grandchild" in sys.argv:
    print("grandchild ready", flush=True)
    while True:
        time.sleep(3600)

# The ignored disposition survives exec, but say it explicitly in the grandchild too.
grandchild = subprocess.Popen(
    [sys.executable, __file__, "--grandchild"], stdout=subprocess.PIPE, text=True
)
assert grandchild.stdout is not None
grandchild.stdout.readline()
print(json.dumps({"pid": os.getpid(), "grandchild": grandchild.pid}), flush=True)
while True:
    time.sleep(3600)
