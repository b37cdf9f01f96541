#!/bin/bash
# Runs harness.py argument lines from work/long/queue.txt one at a time (append lines to queue more runs).
cd "$(dirname "$0")/../../.."
Q=work/long/queue.txt
touch $Q
while true; do
  line=$(head -n 1 $Q)
  if [ -z "$line" ]; then sleep 5; continue; fi
  sed -i 1d $Q
  echo "=== $(date +%H:%M:%S) $line" >> work/long/logs/queue.log
  PYTHONPATH=$PWD nice -n 10 .venv/bin/python bench/quality/long/harness.py $line >> work/long/logs/queue.log 2>&1
done
