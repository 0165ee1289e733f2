#!/usr/bin/env bash
# Mutation check of the test suite: applies one small bug at a time to a scratch copy of
# train_swat.c, builds test_swat and train_swat from it, runs the suite and shows which
# checks catch the bug. Every mutation must make the suite fail. Needs dev/states (make states).
# usage: bash dev/mutation_check.sh        (about 15 s per mutation on an idle machine)
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$root/dev" "$work/dev"
ln -s "$root/tests" "$work/tests" # the committed fixtures and test data: a check that cannot
ln -s "$root/data" "$work/data"   # find its files fails, in every run
cp "$root/test_swat.c" "$work/"
flags="-std=c11 -O3 -ffp-contract=fast -march=native -fopenmp"
survived=0
mutate() { # NAME OLD NEW: replace the first occurrence of OLD by NEW
  /usr/bin/python3 - "$root/train_swat.c" "$work/train_swat.c" "$2" "$3" <<'PY' || { echo "== $1: pattern not found"; survived=$((survived + 1)); return; }
import sys
src, dst, old, new = sys.argv[1:]
s = open(src).read()
if old not in s: sys.exit(1)
open(dst, "w").write(s.replace(old, new, 1))
PY
  (cd "$work" && cc $flags -o train_swat train_swat.c -lm && cc $flags -w -o test_swat test_swat.c -lm) || { echo "== $1: build failed"; return; }
  out=$(cd "$work" && timeout 600 ./test_swat 2>&1)
  echo "== $1: $(echo "$out" | tail -n 1)"
  echo "$out" | grep '^FAIL' | cut -c1-120 | head -n 3 | sed 's/^/   /'
  echo "$out" | tail -n 1 | grep -q ' 0 failed' && survived=$((survived + 1))
}
# the control: the unchanged file must pass, or a "caught" mutation would mean nothing
mutate "control: no mutation" '' ''
if [ "$survived" -ne 1 ]; then echo "the unchanged train_swat.c fails the suite here: fix that first"; exit 1; fi
survived=0
mutate "ALiBi sign" 'slopes[h] = -alibi_magnitude(c, h + 1);' 'slopes[h] = alibi_magnitude(c, h + 1);'
mutate "RoPE pairing (halves instead of interleaved)" 'float x0 = v[2 * i], x1 = v[2 * i + 1]' 'float x0 = v[i], x1 = v[i + D / 2]'
mutate "window boundary by one" 'return window < T ? window : T;' 'return window + 1 < T ? window + 1 : T;'
mutate "RMSNorm epsilon" '#define RMSNORM_EPS 1e-5f' '#define RMSNORM_EPS 1e-6f'
mutate "AdamW bias correction" 'double bc1 = 1.0 - pow(o->beta1, step + 1)' 'double bc1 = 1.0 - pow(o->beta1, step + 2)'
mutate "sigmoid backward" 'ds[j] = ds[j] * p[j] * (1.0f - p[j]) * scale;' 'ds[j] = ds[j] * p[j] * scale;'
mutate "softmax backward" 'ds[j] = p[j] * (ds[j] - p_dp) * scale;' 'ds[j] = p[j] * ds[j] * scale;'
mutate "SwiGLU backward" 'sg * (1.0f + x * (1.0f - sg))' 'sg * (1.0f + x * sg)'
mutate "weight decay on norm gains" 'return tensor != P_ATTN_NORM && tensor != P_MLP_NORM && tensor != P_FINAL_NORM;' 'return 1;'
mutate "warmup off by one" 'return o->lr * (step + 1) / o->warmup;' 'return o->lr * step / o->warmup;'
mutate "clip coefficient" 'gscale = (float)(o->clip / (norm + 1e-6));' 'gscale = (float)(o->clip / norm);'
mutate "loader wrap" 'if (ld->shard->n - ld->cursor < (long)B * T + 1) ld->cursor = 0;' 'if (ld->shard->n - ld->cursor < (long)B * T) ld->cursor = 0;'
mutate "ring buffer slot" 'int slot = (int)(p % w), kept' 'int slot = (int)((p + 1) % w), kept'
mutate "sequence offset" 'inputs[i] = t[start + i]; targets[i] = t[start + i + 1];' 'inputs[i] = t[start + i + 1]; targets[i] = t[start + i + 2];'
mutate "version 1 slope rule forgotten" 'return c->version == 1 ? ldexpf(1.0f, -k) : (float)exp2(-8.0 * k / c->H);' 'return (float)exp2(-8.0 * k / c->H);'
mutate "version 2 slopes as 2^-k" 'return c->version == 1 ? ldexpf(1.0f, -k) : (float)exp2(-8.0 * k / c->H);' 'return ldexpf(1.0f, -k);'
mutate "CRC table shift" 'crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);' 'crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 7);'
mutate "start token not first" 'inputs[0] = bos;' 'inputs[0] = t[start];'
mutate "kept first token at its text distance" 'a[j] = sc * scale + slope * (float)(cache_index - j);' 'a[j] = sc * scale + slope * (float)(p - j);'
mutate "reference attention: sigmoid backward" 'for (int d = 0; d < seen; d++) ds[d] *= a[d] * (1.0f - a[d]);' 'for (int d = 0; d < seen; d++) ds[d] *= a[d];'
mutate "reference decoder: a key one slot off" 'int sl = (int)((p - d) % w);' 'int sl = (int)((p - d + 1) % w);'
mutate "sink heads: switched-off heads counted" '&& st->row_sum[i] / st->queries >= SINK_MIN_ROW_SUM;' ';'
mutate "named product: dK without the transpose" 'gemm_serial(out, ld_out, A, 1, ld_a, B, ld_b, 1, M, N, K, add, scratch);' 'gemm_serial(out, ld_out, A, ld_a, 1, B, ld_b, 1, M, N, K, add, scratch);'
echo
echo "mutations not caught: $survived"
[ "$survived" -eq 0 ]
