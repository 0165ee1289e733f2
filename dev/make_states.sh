#!/usr/bin/env bash
# Writes the PyTorch reference's debug states (dev/train_swat.py --write-states) if any of
# them is missing or older than the script. Needs PyTorch for /usr/bin/python3 (Debian's
# python3-torch): installed here when running as root, else the apt-get line is printed and
# test_swat reports the cross-check as SKIPPED.
set -u
py=${1:-/usr/bin/python3}
dir=${2:-dev/states}
# the names of STATE_CONFIGS in dev/train_swat.py (version 2 checkpoints; swat_h6 and
# swat_bos came with version 2)
names="swat vanilla sig_onesided_norope softmax_window sig_noalibi_rope swat_w1 swat_h6 swat_bos"
fresh=1
for n in $names; do
  for f in "$dir/$n.state" "$dir/$n.ckpt"; do
    if [ ! -f "$f" ] || [ ! "$f" -nt dev/train_swat.py ]; then fresh=0; fi
  done
done
if [ "$fresh" = 1 ]; then exit 0; fi
if ! "$py" -c 'import torch' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing PyTorch for the reference cross-check: apt-get install python3-torch libopenblas0-pthread"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq python3-torch python3-numpy libopenblas0-pthread >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq python3-torch python3-numpy libopenblas0-pthread >/dev/null 2>&1; }
  fi
fi
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "WARNING: no PyTorch for $py; the PyTorch cross-check will be SKIPPED."
  echo "         install it with: sudo apt-get install python3-torch libopenblas0-pthread"
  exit 0
fi
"$py" dev/train_swat.py --write-states "$dir"
