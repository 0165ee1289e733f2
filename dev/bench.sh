#!/usr/bin/env bash
# make bench: training speed of train_swat against the machine's measured peak and against
# PyTorch eager (dev/train_swat.py, float32, same threads), all measured in this one run.
# Times are medians of timed steps after warm-up steps. Prints a table; nothing is asserted.
set -eu
bin=${SWAT_BIN:-./train_swat}
py=${PYTHON:-/usr/bin/python3}
threads=${THREADS:-$(nproc)}
steps=${STEPS:-8}        # timed steps per configuration (after 2 warm-up steps)
shard=data/bible/train.bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O3 -march=native -mprefer-vector-width=512 -ffp-contract=fast -fopenmp -o "$tmp/peak" dev/peak_flops.c 2>/dev/null ||
  cc -O3 -march=native -ffp-contract=fast -fopenmp -o "$tmp/peak" dev/peak_flops.c
peak=$(OMP_NUM_THREADS=$threads "$tmp/peak" | awk '{print $2}')
# PyTorch at its best. OpenBLAS picks its kernels for the CPU it recognises, and falls back to
# old ones on a CPU newer than the library (Prescott's SSE3 on a recent AVX-512 Xeon: 40 instead
# of 212 GFLOP/s); this environment may also set OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE. So the
# PyTorch and sgemm columns try the cores this CPU can run (by /proc/cpuinfo's flags: SkylakeX
# and Cooperlake need AVX-512, Haswell and Zen AVX2) beside OpenBLAS's own choice (auto), keep
# the fastest sgemm whose product checks out against float64, and print which core ran. The
# setting is for those commands alone (torch_env); the tests and CI never set it.
cpu_flags=" $(grep -m 1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { for f in "$@"; do case "$cpu_flags" in *" $f "*) ;; *) return 1 ;; esac; done; }
candidates="auto"
if has avx2 fma; then candidates="$candidates Haswell Zen"; fi
if has avx512f avx512bw avx512dq avx512vl; then candidates="$candidates SkylakeX"; fi
if has avx512f avx512_bf16; then candidates="$candidates Cooperlake"; fi
core_env() { # the env(1) arguments that run core $1 ("auto": OpenBLAS's own choice)
  if [ "$1" = auto ]; then echo "-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
  else echo "-u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=$1"; fi
}
# blas_info ENV.. -> "corename sgemm_gflops max_rel_err": OpenBLAS's core (openblas_get_corename of
# the library PyTorch loaded), sgemm 4096^3 through PyTorch, and a 512^3 product against float64
blas_info() {
  "$@" "$py" - "$threads" 2>/dev/null <<'PYEOF' || echo "n/a n/a n/a"
import ctypes, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
core = "n/a"
for path in sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.lower()}):
    try:
        f = ctypes.CDLL(path).openblas_get_corename
        f.restype = ctypes.c_char_p
        core = f().decode(); break
    except (OSError, AttributeError):
        pass
x, y = torch.randn(512, 512), torch.randn(512, 512)
err = ((x @ y).double() - x.double() @ y.double()).abs().max() / (x.double() @ y.double()).abs().max()
a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
best = 0.0
for _ in range(5):
    t0 = time.perf_counter(); a @ b; dt = time.perf_counter() - t0
    best = max(best, 2 * 4096 ** 3 / dt / 1e9)
print(f"{core} {best:.1f} {err:.1e}")
PYEOF
}
read -r core_env sgemm_env err_env <<< "$(blas_info env)"
torch_env="env $(core_env auto)" core=n/a sgemm=n/a err_best=n/a tried=""
for c in $candidates; do
  read -r got gflops rel <<< "$(blas_info env $(core_env "$c"))"
  tried="$tried, $c: $got $gflops"
  if awk -v g="$gflops" -v r="$rel" -v best="$sgemm" 'BEGIN { exit !(g != "n/a" && r != "n/a" && r + 0 < 1e-4 &&
                                                            (best == "n/a" || g + 0 > best + 0)) }'; then
    torch_env="env $(core_env "$c")" core=$got sgemm=$gflops err_best=$rel
  fi
done
# the PyTorch reference's first training steps, in float32 on the same batches, both ways
torch_losses() {
  "$@" "$py" dev/train_swat.py $model --train "$shard" --batch 4 --seq 128 --steps 3 --warmup 0 --threads "$threads" \
    --lr 1e-3 --shuffle off --param-init torch-randn 2>/dev/null |
    sed -nE 's/^step [0-9]+\/[0-9]+ loss ([0-9.]+).*/\1/p' | tr '\n' ' '
}
model="--layers 4 --heads 8 --dim 256 --ffn 704 --vocab 256 --attn sigmoid --alibi 4:4 --rope on"

# c_run NAME THREADS B T W -> "ms_per_step tokens_per_s gflops"
c_run() {
  local out="$tmp/$1"
  OMP_NUM_THREADS=$2 "$bin" --train "$shard" --out "$out" $model --batch "$3" --seq "$4" --window "$5" \
    --steps $((steps + 2)) --warmup 0 --val-every 0 --sample-every 0 --shuffle off > "$out.txt"
  local fpt
  fpt=$(sed -nE 's/^flops per token \(forward\+backward\): ([0-9.]+) M/\1/p' "$out.txt")
  awk '/^step [0-9]+ loss/ { if (++n > 2) print $10 }' "$out/log.txt" | sort -n |
    awk -v B="$3" -v T="$4" -v fpt="$fpt" '{ ms[++k] = $1 }
      END { med = (k % 2) ? ms[(k + 1) / 2] : (ms[k / 2] + ms[k / 2 + 1]) / 2;
            tps = B * T / (med / 1000); printf "%.1f %.0f %.1f\n", med, tps, tps * fpt * 1e6 / 1e9 }'
}
# py_run B T W [BLOCK STEPS] -> tokens_per_s (or "n/a"). BLOCK 256 (the reference's default)
# computes attention per block of 256 queries over the keys they can see; BLOCK 0 is the
# usual masked T x T attention that a plain PyTorch implementation pays for.
py_run() {
  if ! "$py" -c 'import torch' 2>/dev/null; then echo n/a; return; fi
  local tps
  tps=$($torch_env "$py" dev/train_swat.py $model --batch "$1" --seq "$2" --window "$3" --attn-block "${4:-256}" \
    --bench-steps "${5:-$steps}" --threads "$threads" 2>/dev/null | sed -nE 's/^bench tokens_per_s ([0-9.]+).*/\1/p')
  echo "${tps:-n/a}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "n/a" || b == "" || b == 0) print "n/a"; else printf "%.1fx", a / b }'; }

echo "== make bench: $(nproc) cores, $threads threads, $(date -u +%Y-%m-%d)"
echo "peak (FMA-throughput probe, dev/peak_flops.c): $peak GFLOP/s"
echo "OpenBLAS sgemm 4096^3 through PyTorch: $sgemm GFLOP/s with core $core, the fastest that checks out of the cores"
echo "  tried (OPENBLAS_CORETYPE: OpenBLAS's core, GFLOP/s${tried}); ${torch_env#env } for the torch columns;"
echo "  with this environment's settings${OPENBLAS_CORETYPE:+ (OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE)}: core $core_env, $sgemm_env GFLOP/s"
if "$py" -c 'import torch' 2>/dev/null; then
  l_env=$(torch_losses env); l_best=$(torch_losses $torch_env)
  same=$(awk -v a="$l_env" -v b="$l_best" 'BEGIN { n = split(a, x, " "); m = split(b, y, " "); d = 0
    for (i = 1; i <= n; i++) { e = x[i] - y[i]; if (e < 0) e = -e; if (e > d) d = e }
    print (n == 3 && m == 3 && d < 1e-4) ? "agree" : "DISAGREE" }')
  echo "check: sgemm 512^3 vs float64, max rel err $err_best ($err_env with the environment's core); the PyTorch"
  echo "  reference's first 3 training steps, losses $l_best vs $l_env: $same (the torch columns use core $core)"
fi
echo
pct() { awk -v g="$1" -v p="$2" 'BEGIN { if (p == "n/a" || p == 0) print "n/a"; else printf "%.0f%%", 100 * g / p }'; }
printf '%-30s %8s %9s %8s %7s %7s %10s %7s %10s %8s\n' configuration ms/step tokens/s GFLOP/s %FMA %sgemm torch_tok/s C/torch torchTxT C/TxT
for cfg in "default B=16 T=256 w=64:16 256 64" "long-context B=2 T=4096 w=128:2 4096 128"; do
  name=${cfg%%:*}; set -- ${cfg#*:}
  read -r ms tps gf <<< "$(c_run "cfg$1_$2" "$threads" "$1" "$2" "$3")"
  pt=$(py_run "$1" "$2" "$3")
  # T x T attention: the same as the blocked reference when T <= 256; 3 timed steps otherwise
  if [ "$2" -le 256 ]; then pf=$pt; else pf=$(py_run "$1" "$2" "$3" 0 3); fi
  printf '%-30s %8s %9s %8s %7s %7s %10s %7s %10s %8s\n' "$name" "$ms" "$tps" "$gf" "$(pct "$gf" "$peak")" \
    "$(pct "$gf" "$sgemm")" "$pt" "$(ratio "$tps" "$pt")" "$pf" "$(ratio "$tps" "$pf")"
done
echo "(torch_tok/s: dev/train_swat.py's attention in blocks of 256 queries over the keys they see;"
echo " torchTxT: the same with --attn-block 0, the usual masked T x T attention of a plain implementation)"
echo
echo "per-token step time with w=128 fixed (B*T = 8192 tokens per step): attention is linear in T"
printf '%8s %6s %14s %9s\n' T B us/token vs_T=512
base=""
for T in 512 1024 2048 4096; do
  B=$((8192 / T))
  read -r ms tps gf <<< "$(c_run "t$T" "$threads" "$B" "$T" 128)"
  us=$(awk -v t="$tps" 'BEGIN{printf "%.1f", 1e6 / t}')
  [ -n "$base" ] || base=$us
  printf '%8d %6d %14s %9s\n' "$T" "$B" "$us" "$(awk -v a="$us" -v b="$base" 'BEGIN{printf "%+.1f%%", 100 * (a / b - 1)}')"
done
echo
echo "threads, default configuration"
read -r ms1 tps1 gf1 <<< "$(c_run thr1 1 16 256 64)"
read -r msn tpsn gfn <<< "$(c_run thrn "$threads" 16 256 64)"
echo "1 thread: $tps1 tokens/s; $threads threads: $tpsn tokens/s; speed-up $(ratio "$tpsn" "$tps1")"
