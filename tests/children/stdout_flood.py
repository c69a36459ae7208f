"""Write numbered lines to stdout as fast as the pipe takes them for ``--seconds``, then sleep.

Prints "done <lines>" on stderr afterwards. Each line is about ``--width``
bytes: ``line <i> <padding>``, in writes of about 64 KiB.
"""

import argparse
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, required=True)
parser.add_argument("--width", type=int, default=100)
args = parser.parse_args()

pad = "x" * args.width
out = sys.stdout.buffer
count = 0
deadline = time.monotonic() + args.seconds
while time.monotonic() < deadline:
    chunk = "".join(f"line {count + i} {pad}\n" for i in range(600))
    out.write(chunk.encode())
    out.flush()
    count += 600
print(f"done {count}", file=sys.stderr, flush=True)
while True:
    time.sleep(3600)
