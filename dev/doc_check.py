"""dev/doc_check.py ROOT COMMAND: what ties README.md and doc/*.md to the commands they show
and to the numbers those commands printed (doc/tests.md, "The documentation is tested too").
dev/test_repro.sh runs it and counts its "ok<TAB>what" / "FAIL<TAB>what" lines;
dev/doc_records.sh uses its list of blocks.
  numbers          every <!-- numbers: FILE...; LABEL: values --> block and <!-- quote: FILE --> block
  blocks OUTDIR    every ```sh / ```python block with its <!-- test: KIND ARGS --> marker, written to
                   OUTDIR/NN.sh (or .py); prints "NN<TAB>KIND<TAB>ARGS<TAB>FILE:LINE" lines
  record NAME      the blocks marked "record NAME" are in dev/results/NAME/evals.txt as written
  inline           the inline code spans that are commands: "FILE:LINE<TAB>span"
"""
import bisect, glob, os, re, sys

root, cmd = sys.argv[1], sys.argv[2]
os.chdir(root)
PAGES = ["README.md"] + sorted(glob.glob("doc/*.md"))
COMMAND = re.compile(r"^((\./)?train_swat(_mpi|_naive)?|make|mpirun|/usr/bin/python3|bash|data/prepare_text|cat|for|gdb"
                     r"|(dev|data|tests|fuzz)/[\w.-]+\.(py|sh))( |$)")
MARK = re.compile(r"^<!-- (numbers|quote|test): (.*) -->$")


def emit(ok, what):
    print(("ok" if ok else "FAIL") + "\t" + what)


def block_after(lines, i):
    """The block that starts at line i: a fenced block to its closing fence, else to a blank line."""
    if lines[i].startswith("```"):
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines) - 1)
        return lines[i:end + 1]
    end = next((j for j in range(i, len(lines)) if not lines[j].strip()), len(lines))
    return lines[i:end]


def doc_numbers(text):
    """(string, value, decimals) of the numbers a page prints: decimals always, whole numbers of
    100 or more; not inside `code`, link targets, dates or times, exponents, names like x86-64."""
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}:\d{2}\b", " ", text)
    out = []
    for m in re.finditer(r"(?<![\w.^/])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w])", text):
        whole, frac = m.group(1).replace(",", ""), m.group(2)
        s = whole + ("." + frac if frac else "")
        if frac or int(whole) >= 100:
            out.append((m.group(0), float(s), len(frac) if frac else 0))
    return out


def source_values(path):
    vals = []
    for f in sorted(glob.glob(path)):
        text = open(f, errors="replace").read()
        for m in re.finditer(r"\d+(?:\.\d+)?", text):
            vals.append(float(m.group(0)))
        for m in re.finditer(r"(?<![\d,])\d{1,3}(?:,\d{3})+(?!\d)", text):  # 214,912
            vals.append(float(m.group(0).replace(",", "")))
    return vals


def found(values, x, d):
    tol = 0.5 * 10 ** -d * (1 + 1e-9) + 1e-12
    i = bisect.bisect_left(values, x - tol)
    return i < len(values) and values[i] <= x + tol


def check_numbers():
    for page in PAGES:
        lines = open(page).read().split("\n")
        for i, line in enumerate(lines):
            m = MARK.match(line.strip())
            if not m or m.group(1) == "test":
                continue
            where = f"{page}:{i + 1}"
            block = block_after(lines, i + 1)
            if not block or not block[0].strip():
                emit(False, f"{where}: the marker stands right before its block (no blank line between)")
                continue
            if m.group(1) == "quote":
                src = m.group(2).strip()
                if not os.path.exists(src):
                    emit(False, f"{where}: {src} does not exist")
                    continue
                have = set(l.rstrip() for l in open(src, errors="replace").read().split("\n"))
                body = [l for l in block if not l.startswith("```")]
                missing = [l for l in body if l.rstrip() and l.rstrip() not in have]
                emit(not missing and body, f"{where}: the {len(body)} lines quoted are lines of {src}"
                     + (f"; not there: {missing[0]!r}" if missing else ""))
                continue
            parts = [p.strip() for p in m.group(2).split(";")]
            srcs, allowed = parts[0].split(), []
            for p in parts[1:]:
                label, _, vals = p.partition(":")
                allowed += [v for _, v, _ in doc_numbers(vals)] + [float(v) for v in re.findall(r"\d+(?:\.\d+)?", vals)]
            values = []
            bad_src = [s for s in srcs if not glob.glob(s)]
            for s in srcs:
                values += source_values(s)
            values = sorted(values + allowed)
            nums = doc_numbers("\n".join(block))
            missing = [s for s, x, d in nums if not found(values, x, d)]
            if bad_src:
                emit(False, f"{where}: no file {', '.join(bad_src)}")
            elif not nums:
                emit(False, f"{where}: a numbers marker on a block without numbers")
            else:
                emit(not missing, f"{where}: {len(nums)} numbers, each in {' '.join(srcs)}"
                     + (f" or declared; not found: {', '.join(missing)}" if missing else ""))


def fences():
    """(page, line index, language, marker or None, body lines) of every fenced block."""
    for page in PAGES:
        lines = open(page).read().split("\n")
        i = 0
        while i < len(lines):
            if lines[i].startswith("```"):
                end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
                prev = lines[i - 1].strip() if i > 0 else ""
                m = MARK.match(prev)
                marker = m.group(2).strip() if m and m.group(1) == "test" else None
                yield page, i, lines[i][3:].strip(), marker, lines[i + 1:end]
                i = end + 1
            else:
                i += 1


def check_blocks(outdir):
    os.makedirs(outdir, exist_ok=True)
    n = 0
    for page, i, lang, marker, body in fences():
        where = f"{page}:{i + 1}"
        first = next((l.strip() for l in body if l.strip() and not l.strip().startswith("#")), "")
        if lang not in ("sh", "python"):
            if COMMAND.match(first):
                emit(False, f"{where}: a block of commands is marked ```sh (with a test marker), not ```{lang}")
            continue
        if marker is None:
            emit(False, f"{where}: a ```{lang} block without a <!-- test: KIND --> line right before it")
            continue
        n += 1
        kind, _, args = marker.partition(" ")
        open(os.path.join(outdir, f"{n:02d}.{'py' if lang == 'python' else 'sh'}"), "w").write("\n".join(body) + "\n")
        print(f"{n:02d}\t{kind}\t{args or '-'}\t{where}")  # read splits on tabs: no empty field


def check_record(name):
    path = f"dev/results/{name}/evals.txt"
    recorded = []
    if os.path.exists(path):
        text = open(path).read()
        recorded = [b.strip("\n") for b in re.findall(r"^## [^\n]*: block \d+\n```sh\n(.*?)^```$", text, re.M | re.S)]
    blocks = [(f"{page}:{i + 1}", "\n".join(body).strip("\n")) for page, i, _, marker, body in fences()
              if marker == f"record {name}"]
    for where, body in blocks:
        emit(body in recorded, f"{where}: the block is in {path} as written (dev/doc_records.sh {name} ran it)")
    extra = [b for b in recorded if b not in [body for _, body in blocks]]
    emit(not extra, f"{path} holds no block that the pages no longer have"
         + (f" (first: {extra[0].splitlines()[0]!r})" if extra else ""))


def inline_commands():
    """Code spans (they may wrap over lines) outside fenced blocks that run a program."""
    for page in PAGES:
        text = re.sub(r"^```.*?^```$", "", open(page).read(), flags=re.M | re.S)
        text = re.sub(r"^<!--.*?-->$", "", text, flags=re.M)
        for span in re.findall(r"`([^`]+)`", text):
            span = " ".join(span.split())
            if COMMAND.match(span) and " " in span:
                print(f"{page}\t{span}")


if cmd == "numbers":
    check_numbers()
elif cmd == "blocks":
    check_blocks(sys.argv[3])
elif cmd == "record":
    check_record(sys.argv[3])
elif cmd == "inline":
    inline_commands()
