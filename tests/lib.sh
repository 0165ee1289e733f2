# tests/lib.sh: what the shell test suites share; source it (". tests/lib.sh").
# Every suite prints one line per check ("ok - ...", "FAIL - ...", "SKIPPED - ...") and ends
# with "N passed, M failed[, K skipped]", which dev/run_tests.sh adds up.
passed=0; failed=0; skipped=0
ok()   { echo "ok - $*"; passed=$((passed + 1)); }
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }
skip() { echo "SKIPPED - $*"; skipped=$((skipped + 1)); }
# check NAME CMD...: ok if CMD succeeds, else FAIL
check() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }
summary() {
  if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"
  else echo "$passed passed, $failed failed"; fi
}
# the summary line, then exit with the suite's status
finish() { summary; [ "$failed" -eq 0 ]; exit $?; }

# the per-step losses of a run's log.txt, one per line
losses() { awk '$1 == "step" { print $4 }' "$1/log.txt"; }
# max |a - b| over two loss lists of the same length (empty or unequal lengths: "inf")
maxdiff() { paste "$1" "$2" | awk 'NF != 2 { bad = 1 } { d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d }
                                   END { if (bad || NR == 0) print "inf"; else printf "%.3g\n", m }'; }
within() { awk -v d="$1" -v t="$2" 'BEGIN { exit !(d != "inf" && d + 0 <= t + 0) }'; }

# text_shard OUT SEED WORDS [TEXT]: a byte token shard (llm.c's format) of WORDS words drawn
# from TEXT by a fixed linear congruential sequence from SEED: the same bytes on every machine
text_shard() {
  /usr/bin/python3 - "$1" "$2" "$3" "${4:-in the beginning was the word and the word was with god and the light shineth in darkness }" <<'PY'
import struct, sys
path, x, n, text = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
words = text.split()
out = []
for i in range(n):
    x = (x * 1103515245 + 12345) % 2**31
    out.append(words[x % len(words)])
data = b" ".join(out)
open(path, "wb").write(struct.pack("<256i", *([20240520, 1, len(data)] + [0] * 253)) + struct.pack("<%dH" % len(data), *data))
PY
}
