#!/usr/bin/env bash
# tests/torchrun.sh: dev/train_swat.py trains train_swat's model data-parallel under torchrun's
# environment (issue 25), here on the CPU with gloo. It runs the torchrun commands of doc/gpu.md
# with dev/launch_ranks.py in place of torchrun and --device cpu (2 ranks for 8 GPUs, one rank
# per node for two nodes) on a generated shard, a tiny model added at the end of the command
# line, and checks: the same losses on 1 process, 2 ranks and 2 nodes x --grad-accum 2 (1e-5
# relative) and in ./train_swat (1e-4); checkpoints both ways (--eval, --resume); bfloat16; the
# error without a GPU; the reference's --self-test. One line per check, then "N passed, M failed".
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
py=${PYTHON:-/usr/bin/python3}
bin=${SWAT_BIN:-./train_swat}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$py" -c 'import torch' 2>/dev/null; then
  fail "no PyTorch for $py (sudo apt-get install python3-torch)"; finish
fi
[ -x "$bin" ] || { fail "$bin is missing (make train_swat)"; finish; }
text_shard "$tmp/train.bin" 777 20000
text_shard "$tmp/val.bin" 4242 3000
tiny="--layers 2 --heads 4 --dim 64 --ffn 128 --seq 64 --window 16 --batch 8 --steps 8
      --val-every 4 --val-chunks 8 --final-val-chunks 16 --threads 1"
tiny=$(echo $tiny)

# the torchrun commands of doc/gpu.md, one a line (continuation lines joined)
"$py" - doc/gpu.md >"$tmp/doc_cmds" <<'PY'
import sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
for line in text.splitlines():
    if line.startswith("torchrun "): print(" ".join(line.split()))
PY
doc_cmd() { grep -e "$1" "$tmp/doc_cmds" | head -1; }
one=$(doc_cmd "--nproc_per_node 1 ")
eight=$(doc_cmd "--standalone --nproc_per_node 8 ")
node0=$(doc_cmd "--node_rank 0 ")
node1=$(doc_cmd "--node_rank 1 ")
cuda=$(grep -c -- '--device cuda' "$tmp/doc_cmds")
if [ -n "$one" ] && [ -n "$eight" ] && [ -n "$node0" ] && [ -n "$node1" ] && [ "$cuda" = 4 ]; then
  ok "doc/gpu.md has the torchrun commands for 1 GPU, 8 GPUs and 2 nodes, each with --device cuda"
else fail "doc/gpu.md: expected 4 torchrun commands with --device cuda: $(cat "$tmp/doc_cmds")"; fi
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
# cpu CMD NPROC: a command of the doc on this machine: the launcher, the CPU, NPROC ranks a node,
# the generated shards, the run folders in $tmp
cpu() {
  echo "$1" | sed -e "s|^torchrun |$py dev/launch_ranks.py |" -e "s|--device cuda|--device cpu|" \
    -e "s|--nproc_per_node [0-9]*|--nproc_per_node $2|" -e "s|data/bible/|$tmp/|g" \
    -e "s|out/|$tmp/|" -e "s|--master_addr [^ ]*|--master_addr 127.0.0.1|" \
    -e "s|--master_port [0-9]*|--master_port $port|"
}
# the flags after dev/train_swat.py, without --device: what ./train_swat gets
flags() {
  echo "$1" | sed -e 's|.* dev/train_swat.py ||' -e 's|--device [a-z]* ||' \
    -e "s|data/bible/|$tmp/|g"
}
col() { awk -v k="$2" '$1 == k { print $4 }' "$1/log.txt"; }     # col DIR step|val: its losses
# maxrel A B: max |a - b| / |b| over two files of numbers, line by line ("inf" unless paired)
maxrel() {
  paste "$1" "$2" | awk 'NF != 2 { bad = 1 }
                         { d = ($1 - $2) / $2; if (d < 0) d = -d; if (d > m) m = d }
                         END { if (bad || NR == 0) print "inf"; else printf "%.2g\n", m }'
}
# rel A B: the relative difference of two numbers ("inf" if one is missing)
rel() { echo "$1" >"$tmp/rel_a"; echo "$2" >"$tmp/rel_b"; maxrel "$tmp/rel_a" "$tmp/rel_b"; }
eval_loss() {   # eval_loss CKPT: train_swat's evaluation of the first 16 chunks of the val shard
  "$bin" --init "$1" --eval "$tmp/val.bin" --eval-chunks 16 2>&1 | sed -n 's/^eval_loss //p'
}
# same WHAT DIR_A DIR_B TOL: the two runs logged the same losses and validation losses
same() {
  for k in step val; do col "$2" $k >"$tmp/a_$k"; col "$3" $k >"$tmp/b_$k"; done
  local ds dv
  ds=$(maxrel "$tmp/a_step" "$tmp/b_step"); dv=$(maxrel "$tmp/a_val" "$tmp/b_val")
  if within "$ds" "$4" && within "$dv" "$4"; then
    ok "$1: $(wc -l <"$tmp/a_step") losses, $(wc -l <"$tmp/a_val") validations," \
       "max relative difference $ds, $dv"
  else fail "$1: max relative difference $ds (losses), $dv (validations), above $4"; fi
}
run() { local out=$1; shift; "$@" >"$out.out" 2>&1; }           # run NAME CMD..: output in NAME.out
last() { tail -1 "$1.out"; }

# 1 process (the 1-GPU command), 2 ranks (the 8-GPU command), 2 nodes of 1 rank, 2 micro-batches
run "$tmp/gpu1" $(cpu "$one" 1) $tiny || fail "the 1-GPU command on the CPU: $(last "$tmp/gpu1")"
run "$tmp/gpu8" $(cpu "$eight" 2) $tiny || fail "the 8-GPU command on 2 ranks: $(last "$tmp/gpu8")"
same "1 process and 2 ranks (the batch of 8 split 4 + 4)" "$tmp/gpu1" "$tmp/gpu8" 1e-5
run "$tmp/node1" $(cpu "$node1" 1) $tiny --grad-accum 2 &
node1_pid=$!
run "$tmp/nodes2" $(cpu "$node0" 1) $tiny --grad-accum 2 ||
  fail "two nodes, node 0: $(last "$tmp/nodes2")"
wait $node1_pid || fail "two nodes, node 1: $(last "$tmp/node1")"
grep -q "data parallel: 2 ranks x 2 micro-batches of 2 sequences" "$tmp/nodes2.out" ||
  fail "two nodes: not 2 ranks x 2 micro-batches: $(grep 'data parallel' "$tmp/nodes2.out")"
same "1 process and 2 nodes x --grad-accum 2 (micro-batches of 2)" "$tmp/gpu1" "$tmp/nodes2" 1e-5

# the same flags in the C trainer: the same initial weights, data order and schedule
run "$tmp/c8" "$bin" $(flags "$one") $tiny --out "$tmp/c8" --sample-every 0 ||
  fail "./train_swat: $(last "$tmp/c8")"
same "./train_swat with the same flags as dev/train_swat.py" "$tmp/c8" "$tmp/gpu1" 1e-4

# the 2-rank checkpoint in C: --eval against the run's own final validation (16 chunks of T)
ev=$(eval_loss "$tmp/gpu8/model.ckpt")
fv=$(sed -n 's/^final_val_loss //p' "$tmp/gpu8/log.txt")
d=$(rel "$ev" "$fv")
if within "$d" 1e-4; then
  ok "2-rank checkpoint: train_swat --eval $ev, its final validation $fv (relative difference $d)"
else fail "2-rank checkpoint: train_swat --eval '$ev', its final validation '$fv'"; fi

# resume both ways from runs stopped after 4 steps: the losses of the uninterrupted runs
run "$tmp/half8" $(cpu "$eight" 2) $tiny --out "$tmp/half8" --stop-after 4 ||
  fail "2 ranks, --stop-after 4: $(last "$tmp/half8")"
if run "$tmp/c_resume" "$bin" --resume "$tmp/half8/model.ckpt"; then
  same "train_swat --resume of the 2-rank checkpoint after 4 steps" "$tmp/half8" "$tmp/gpu1" 1e-4
else fail "train_swat --resume of the 2-rank checkpoint: $(last "$tmp/c_resume")"; fi
run "$tmp/c_half" "$bin" $(flags "$one") $tiny --out "$tmp/c_half" --stop-after 4 ||
  fail "./train_swat --stop-after 4: $(last "$tmp/c_half")"
if run "$tmp/py_resume" "$py" dev/train_swat.py --resume "$tmp/c_half/model.ckpt" --threads 1; then
  next_c=$(col "$tmp/c8" step | sed -n 5p); next_p=$(col "$tmp/c_half" step | sed -n 5p)
  what="dev/train_swat.py --resume of a C checkpoint after 4 steps"
  what="$what (step 5: C $next_c, torch $next_p)"
  same "$what" "$tmp/c_half" "$tmp/c8" 1e-4
else fail "dev/train_swat.py --resume of a C checkpoint: $(last "$tmp/py_resume")"; fi

# bfloat16: trains, and its checkpoint (float32 weights) evaluates in C as in its own validation
if run "$tmp/bf16" $(cpu "$one" 1) $tiny --dtype bfloat16 --out "$tmp/bf16"; then
  first=$(col "$tmp/bf16" step | head -1); final=$(col "$tmp/bf16" step | tail -1)
  ev=$(eval_loss "$tmp/bf16/model.ckpt")
  fv=$(sed -n 's/^final_val_loss //p' "$tmp/bf16/log.txt")
  d=$(rel "$ev" "$fv")
  falls=$(awk -v a="$first" -v b="$final" 'BEGIN { print (a != "" && b + 0.5 < a + 0) }')
  if [ "$falls" = 1 ] && within "$d" 1e-3; then
    ok "--dtype bfloat16: loss $first -> $final in 8 steps; train_swat --eval $ev," \
       "its bfloat16 validation $fv"
  else fail "--dtype bfloat16: loss '$first' -> '$final', --eval '$ev', validation '$fv'"; fi
else fail "--dtype bfloat16: $(last "$tmp/bf16")"; fi

# the log: dev/plot_log.py reads a PyTorch run's log as a C one
"$py" dev/plot_log.py "$tmp/gpu8" --print >"$tmp/plot.out" 2>&1
n=$(grep -c "^gpu8 step " "$tmp/plot.out"); nv=$(grep -c "^gpu8 val " "$tmp/plot.out")
step8=$(grep "^gpu8 step 8 " "$tmp/plot.out")
if [ "$n" = 8 ] && [ "$nv" = 3 ] && [ "${step8#gpu8 step 8 4096 }" != "$step8" ]; then
  ok "dev/plot_log.py reads the 2-rank log: 8 steps, 3 validations, tokens = step * 64 * 8 ($step8)"
else fail "dev/plot_log.py on the 2-rank log: $(head -3 "$tmp/plot.out")"; fi

# the reference's own checks, the trainer's among them (splitmix64, shuffle, micro-batches, state)
run "$tmp/self" "$py" dev/train_swat.py --self-test --threads 1
if grep -q "^self test passed" "$tmp/self.out"; then
  ok "dev/train_swat.py --self-test: $(grep -c '^ok' "$tmp/self.out") checks passed"
else fail "dev/train_swat.py --self-test: $(grep -m2 -v '^ok' "$tmp/self.out")"; fi

# --device cuda without a GPU: one line, no traceback (with a GPU: the 1-GPU command itself)
if "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  if run "$tmp/cuda1" $(cpu "$one" 1 | sed "s|--device cpu|--device cuda|") $tiny; then
    same "the 1-GPU command on this machine's GPU and on the CPU" "$tmp/cuda1" "$tmp/gpu1" 1e-4
  else fail "the 1-GPU command on this machine's GPU: $(last "$tmp/cuda1")"; fi
else
  "$py" dev/train_swat.py $(flags "$one") $tiny --device cuda >/dev/null 2>"$tmp/nogpu.err"
  rc=$?
  lines=$(wc -l <"$tmp/nogpu.err")
  said=$(grep -c "^error: --device cuda: .*no CUDA GPU" "$tmp/nogpu.err")
  if [ $rc -ne 0 ] && [ "$lines" = 1 ] && [ "$said" = 1 ]; then
    ok "--device cuda without a GPU: exit $rc, one line: $(cat "$tmp/nogpu.err")"
  else fail "--device cuda without a GPU: exit $rc, stderr: $(head -3 "$tmp/nogpu.err")"; fi
fi
finish
