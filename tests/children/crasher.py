"""Write a line to stdout and one to stderr, wait ``--after`` seconds, exit ``--code``."""

import argparse
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--after", type=float, default=0.0)
parser.add_argument("--code", type=int, default=1)
args = parser.parse_args()

print("crasher: on stdout", flush=True)
print("crasher: on stderr", file=sys.stderr, flush=True)
time.sleep(args.after)
sys.exit(args.code)
