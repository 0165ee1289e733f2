#!/usr/bin/env bash
# tests/flags.sh: README.md's flag table says what `./train_swat --help` says. Every flag of
# --help is a row of the table and every row a flag of --help, with the same argument,
# default and modes (the table is the one whose header is "| flag | argument | default |
# modes | meaning |"; --help lists each flag as "  --flag ARG  default  help" under a heading
# that names its modes). The rows are made from --help:
#
#   bash tests/flags.sh --table     prints them, to paste into README.md
#
# Prints one line per check and "N passed, M failed". SWAT_BIN: the trainer (./train_swat).
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
BIN=${SWAT_BIN:-./train_swat}
py=/usr/bin/python3

help=$("$BIN" --help 2>&1)
rc=$?

# shellcheck disable=SC2016
compare='
import re, sys
help_text, readme, mode = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]

def from_help():  # [(flag, argument, default, modes, help)] in the order of --help
    rows, modes = [], None
    for line in help_text.splitlines():
        if re.match(r"^[^ ].*:$", line) and not line.startswith("usage"):
            modes = line[:-1]
        elif line.startswith("  --"):  # "  --flag ARG" in 21 columns, the default in 11
            flag, _, arg = line[2:23].strip().partition(" ")
            rows.append([flag, arg, line[24:35].strip(), modes, line[36:].strip()])
        elif line.startswith(" " * 36) and rows:
            rows[-1][4] += " " + line.strip()
    return rows

def cells(line):  # the cells of a markdown table row, "\|" inside a cell kept as "|"
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.strip().replace("\\|", "|").strip("`") for p in parts]

def from_readme():
    lines = readme.splitlines()
    head = [i for i, l in enumerate(lines) if cells(l)[:4] == ["flag", "argument", "default", "modes"]]
    if not head:
        return None
    rows = []
    for line in lines[head[0] + 2:]:
        if not line.startswith("|"):
            break
        rows.append(cells(line)[:4])
    return rows

helps = from_help()
if mode == "--table":
    print("| flag | argument | default | modes | meaning |")
    print("|---|---|---|---|---|")
    for flag, arg, dflt, modes, text in helps:
        esc = lambda s: s.replace("|", "\\|")
        code = lambda s: "`%s`" % esc(s) if s else ""
        print("| %s | %s | %s | %s | %s |" % (code(flag), code(arg), esc(dflt), modes, esc(text)))
    sys.exit(0)
print("ok" if len(helps) >= 50 else "fail", "--help lists %d flags" % len(helps), sep="|")
table = from_readme()
if table is None:
    print("fail|README.md has no table with the header | flag | argument | default | modes |")
    sys.exit(0)
print("ok|README.md has a flag table of %d rows" % len(table))
readme_rows = {r[0]: r for r in table}
for flag, arg, dflt, modes, _ in helps:
    want = [flag, arg, dflt, modes]
    got = readme_rows.get(flag)
    if got == want:
        print("ok|%s: argument %r, default %r, %s" % (flag, arg, dflt, modes))
    elif got is None:
        print("fail|%s is in --help but not in the README table" % flag)
    else:
        print("fail|%s: --help says %r, the README %r" % (flag, want[1:], got[1:]))
extra = [r[0] for r in table if r[0] not in {h[0] for h in helps}]
print(("fail|README rows that --help does not list: %s" % " ".join(extra)) if extra
      else "ok|every README row is a flag of --help")
same = [r[0] for r in table] == [h[0] for h in helps]
print("ok|the README lists the flags in the order of --help" if same
      else "fail|the README lists the flags in another order than --help")
'
if [ "${1:-}" = --table ]; then "$py" -c "$compare" "$help" README.md --table; exit; fi
check "--help exits 0 and prints the usage" [ $rc -eq 0 -a "${help:0:6}" = "usage:" ]
while IFS='|' read -r verdict text; do
  if [ "$verdict" = ok ]; then ok "$text"; else fail "$text"; fi
done < <("$py" -c "$compare" "$help" README.md check)
finish
