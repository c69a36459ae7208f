"""Allocate and touch ``--mb`` MiB, print "allocated", sleep."""

import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--mb", type=int, required=True)
args = parser.parse_args()

hog = b"\x01" * (args.mb * 1024 * 1024)  # written byte by byte: resident, not lazily mapped
print("allocated", flush=True)
while True:
    time.sleep(3600)
