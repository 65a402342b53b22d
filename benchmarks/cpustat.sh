#!/usr/bin/env bash
# Run a command and print the share of all cores that was busy while it ran: the busy jiffies of
# /proc/stat (user, nice, system, irq, softirq, steal; iowait counts as idle) before and after.
# Usage: benchmarks/cpustat.sh python -m pytest -q farm tests
set -u
read -r _ u n s i w q sq st _ < /proc/stat; b0=$((u + n + s + q + sq + st)); t0=$((b0 + i + w))
"$@"; rc=$?
read -r _ u n s i w q sq st _ < /proc/stat; b1=$((u + n + s + q + sq + st)); t1=$((b1 + i + w))
python3 -c "print(f'cores busy: {($b1 - $b0) / ($t1 - $t0):.3f}')"
exit $rc
