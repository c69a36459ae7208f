"""Print "starting", wait ``--delay`` seconds, then become ws_server.py.

The remaining arguments go to ws_server.py, which replaces this process
(same pid), so a supervisor sees one process that is slow to listen.
"""

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--delay", type=float, required=True)
args, rest = parser.parse_known_args()

print("starting", flush=True)
time.sleep(args.delay)
server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ws_server.py")
os.execv(sys.executable, [sys.executable, server, *rest])
