"""The idle worker both supervisors run: stdlib only, sleeps until killed.

SIGTERM keeps its default action (the process dies at once), so stopping it
costs each supervisor the same: one signal and one reap.
"""

import time

while True:
    time.sleep(3600)
