"""Start a grandchild, print ``{"pid": ..., "grandchild": ...}``, sleep.

The grandchild runs the command after ``--`` (default: sleep forever) in this
process's group, or in a session of its own with ``--new-session`` (the case
that a group kill cannot reach). Its stdout is this process's stdout.
"""

import json
import os
import subprocess
import sys
import time

args = sys.argv[1:]
new_session = "--new-session" in args
command = args[args.index("--") + 1 :] if "--" in args else []
if not command:
    command = [sys.executable, "-c", "import time\nwhile True: time.sleep(3600)"]
grandchild = subprocess.Popen(command, start_new_session=new_session)
print(json.dumps({"pid": os.getpid(), "grandchild": grandchild.pid}), flush=True)
while True:
    time.sleep(3600)
