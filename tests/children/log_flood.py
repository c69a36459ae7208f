"""Write ``--lines`` numbered lines to stdout as fast as possible, then sleep.

Prints "done" on stderr afterwards. Line i is ``line <i> <padding>``, where the
padding makes each line ``--width`` bytes long (newline excluded).
"""

import argparse
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--lines", type=int, required=True)
parser.add_argument("--width", type=int, default=80)
args = parser.parse_args()

lines = []
for i in range(args.lines):
    head = f"line {i} "
    lines.append(head + "x" * max(0, args.width - len(head)) + "\n")
sys.stdout.buffer.write("".join(lines).encode())  # one write: the pipe stays full
sys.stdout.buffer.flush()
print("done", file=sys.stderr, flush=True)
while True:
    time.sleep(3600)
