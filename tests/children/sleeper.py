"""Print "ready", then sleep until signalled.

SIGTERM exits 0 (a well-behaved worker); ``--on-term die`` keeps the default
action instead, so the exit status is "killed by SIGTERM". ``--pidfile`` writes
the pid first, for tests that lose the handle on purpose.
"""

import argparse
import os
import signal
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--on-term", choices=["exit", "die"], default="exit")
parser.add_argument("--pidfile")
args = parser.parse_args()

if args.on_term == "exit":
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
if args.pidfile:
    with open(args.pidfile + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(args.pidfile + ".tmp", args.pidfile)
print("ready", flush=True)
while True:
    time.sleep(3600)
