#!/usr/bin/env bash
# tests/mpi.sh: data-parallel training over MPI (train_swat_mpi) and gradient accumulation.
#
#   bash tests/mpi.sh        (from the repository root; builds nothing: make train_swat train_swat_mpi)
#
# Without mpirun/train_swat_mpi the MPI checks print SKIPPED (counted); --grad-accum is
# checked with the plain build in any case. Ends with "N passed, M failed[, K skipped]".
#
# What "the same step" means here: N ranks x B/N sequences, or K micro-batches of B/K, sum
# the same per-position gradients as one batch of B, in another order. In float32 that moves
# the loss by rounding noise, which grows slowly over steps; the tolerance, 2e-5 on every
# step's loss over 8 steps at lr 3e-3, is far below any real difference (a wrong batch split
# or a missing 1/N moves the loss by 1e-2 or more; measured noise: see the printed maxima).
set -u
export LC_ALL=C OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
cd "$(dirname "$0")/.." || exit 1
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/swat_mpi.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
. tests/lib.sh

if [ ! -x ./train_swat ]; then fail "./train_swat not built (make train_swat)"; summary; exit 1; fi
text_shard "$TMP/text.bin" 4242 5000
RUN="--train $TMP/text.bin --val $TMP/text.bin --layers 2 --heads 4 --dim 32 --ffn 64 --seq 32 --window 8 --steps 8 --warmup 2
     --lr 3e-3 --shuffle off --val-every 4 --val-chunks 4 --final-val-chunks 8 --sample-every 0 --threads 1"
TOL=2e-5

# ---- gradient accumulation (plain build) ----
./train_swat $RUN --batch 8 --out "$TMP/b8" >/dev/null 2>"$TMP/b8.err" || fail "batch 8 run failed: $(cat "$TMP/b8.err")"
losses "$TMP/b8" > "$TMP/b8.l"
for k in 2 4; do
  if ./train_swat $RUN --batch 8 --grad-accum $k --out "$TMP/acc$k" >"$TMP/acc$k.out" 2>"$TMP/acc$k.err"; then
    losses "$TMP/acc$k" > "$TMP/acc$k.l"
    d=$(maxdiff "$TMP/b8.l" "$TMP/acc$k.l")
    if within "$d" "$TOL"; then ok "--grad-accum $k: 8 steps of 4 x 2 micro-batches equal batch 8 (max |dloss| $d <= $TOL)"
    else fail "--grad-accum $k: losses differ from batch 8 by $d"; fi
  else fail "--grad-accum $k run failed: $(head -c 300 "$TMP/acc$k.err")"; fi
done
if ./train_swat $RUN --batch 8 --grad-accum 3 --out "$TMP/acc3" >/dev/null 2>"$TMP/acc3.err"; then fail "--batch 8 --grad-accum 3 was accepted"
elif grep -q "grad-accum" "$TMP/acc3.err" && [ "$(wc -l < "$TMP/acc3.err")" = 1 ]; then ok "--batch 8 --grad-accum 3 is a one-line error"
else fail "--grad-accum 3 error: $(cat "$TMP/acc3.err")"; fi

# ---- MPI ----
if ! command -v mpirun >/dev/null || [ ! -x ./train_swat_mpi ]; then
  skip "MPI: no mpirun or no ./train_swat_mpi (make train_swat_mpi; needs openmpi-bin libopenmpi-dev)"
  summary; [ "$failed" -eq 0 ]; exit
fi
MPIRUN="mpirun --allow-run-as-root --oversubscribe -np 2"
mrun() { local out=$1; shift; $MPIRUN ./train_swat_mpi "$@" --out "$out" >"$out.out" 2>"$out.err"; }
if mrun "$TMP/m2" $RUN --batch 8; then
  losses "$TMP/m2" > "$TMP/m2.l"
  d=$(maxdiff "$TMP/b8.l" "$TMP/m2.l")
  if within "$d" "$TOL"; then ok "2 ranks x 4 sequences equal one process with batch 8 (max |dloss| over 8 steps $d <= $TOL)"
  else fail "2 ranks differ from one process by $d"; fi
  # only rank 0 prints and logs: one config line, one log
  n=$(grep -c "^model:" "$TMP/m2.out")
  if [ "$n" = 1 ]; then ok "2 ranks: only rank 0 prints"; else fail "2 ranks printed $n config lines"; fi
  vp=$(awk '$1 == "val" { print $4 }' "$TMP/b8/log.txt" | tr '\n' ' '); vm=$(awk '$1 == "val" { print $4 }' "$TMP/m2/log.txt" | tr '\n' ' ')
  if [ -n "$vm" ] && [ "$(echo "$vp" | wc -w)" = "$(echo "$vm" | wc -w)" ]; then ok "2 ranks: validations at the same steps ($vm)"
  else fail "validations: one process '$vp', 2 ranks '$vm'"; fi
  # bit-identical to itself
  if mrun "$TMP/m2b" $RUN --batch 8 && cmp -s "$TMP/m2/model.ckpt" "$TMP/m2b/model.ckpt"; then ok "2 ranks: the same run twice gives the same checkpoint, byte for byte"
  else fail "2 ranks: two runs differ"; fi
  # the plain build loads and evaluates the MPI checkpoint
  if ./train_swat --init "$TMP/m2/model.ckpt" --eval "$TMP/text.bin" --eval-chunks 8 > "$TMP/ev.out" 2>&1; then ok "the plain build evaluates the checkpoint of 2 ranks ($(tail -1 "$TMP/ev.out"))"
  else fail "plain --init of the MPI checkpoint: $(cat "$TMP/ev.out")"; fi
  # 2 ranks x --grad-accum 2
  if mrun "$TMP/m2a" $RUN --batch 8 --grad-accum 2; then
    losses "$TMP/m2a" > "$TMP/m2a.l"; d=$(maxdiff "$TMP/b8.l" "$TMP/m2a.l")
    if within "$d" "$TOL"; then ok "2 ranks x --grad-accum 2 equal batch 8 (max |dloss| $d)"; else fail "2 ranks x grad-accum 2 differ by $d"; fi
  else fail "2 ranks with --grad-accum 2 failed: $(head -c 300 "$TMP/m2a.err")"; fi
else fail "mpirun -np 2 failed: $(head -c 400 "$TMP/m2.err")"; fi

# resume across: the plain build stops after 4 steps, 2 ranks continue, and the reverse
if ./train_swat $RUN --batch 8 --stop-after 4 --out "$TMP/r1" >/dev/null 2>&1 \
   && $MPIRUN ./train_swat_mpi --resume "$TMP/r1/model.ckpt" >"$TMP/r1x.out" 2>"$TMP/r1x.err"; then
  losses "$TMP/r1" > "$TMP/r1.l"
  d=$(maxdiff "$TMP/b8.l" "$TMP/r1.l")
  if within "$d" "$TOL"; then ok "resume: 4 steps in one process, 4 more on 2 ranks = 8 in one go (max |dloss| $d)"
  else fail "resume plain -> 2 ranks: losses differ by $d"; fi
else fail "resume plain -> 2 ranks failed: $(head -c 300 "$TMP/r1x.err" 2>/dev/null)"; fi
if mrun "$TMP/r2" $RUN --batch 8 --stop-after 4 && cp "$TMP/r2/model.ckpt" "$TMP/step4.ckpt" \
   && ./train_swat --resume "$TMP/r2/model.ckpt" >/dev/null 2>"$TMP/r2b.err"; then
  losses "$TMP/r2" > "$TMP/r2.l"
  d=$(maxdiff "$TMP/b8.l" "$TMP/r2.l")
  if within "$d" "$TOL"; then ok "resume: 4 steps on 2 ranks, 4 more in one process = 8 in one go (max |dloss| $d)"
  else fail "resume 2 ranks -> plain: losses differ by $d"; fi
else fail "resume 2 ranks -> plain failed: $(head -c 300 "$TMP/r2b.err")"; fi

# a batch that does not split over the ranks
if mrun "$TMP/odd" $RUN --batch 7; then fail "--batch 7 on 2 ranks was accepted"
elif grep -q "batch" "$TMP/odd.err"; then ok "--batch 7 on 2 ranks is an error naming the batch"
else fail "--batch 7 on 2 ranks: $(head -c 300 "$TMP/odd.err")"; fi

# one rank failing ends the job with its error, and the last checkpoint stays intact
mkdir -p "$TMP/die"; cp "$TMP/step4.ckpt" "$TMP/die/model.ckpt"; cp "$TMP/r2/log.txt" "$TMP/die/log.txt"
cp "$TMP/die/model.ckpt" "$TMP/die.before"
cat > "$TMP/die.sh" <<SHEOF
#!/bin/sh
if [ "\${OMPI_COMM_WORLD_RANK:-0}" = 1 ]; then exec ./train_swat_mpi --resume "$TMP/die/model.ckpt" --train "$TMP/missing.bin"
else exec ./train_swat_mpi --resume "$TMP/die/model.ckpt"; fi
SHEOF
chmod +x "$TMP/die.sh"
if timeout 60 $MPIRUN "$TMP/die.sh" >"$TMP/die.out" 2>"$TMP/die.err"; then fail "a failing rank: the job exited 0"
elif grep -q "missing.bin" "$TMP/die.err" && cmp -s "$TMP/die/model.ckpt" "$TMP/die.before"; then ok "a failing rank ends the job with its error ('missing.bin'), the checkpoint is intact"
else fail "a failing rank: $(head -c 300 "$TMP/die.err")"; fi
summary
[ "$failed" -eq 0 ]
