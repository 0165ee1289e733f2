#!/usr/bin/env python3
"""Bigram-Backcopy shards: the smallest task where softmax attention grows an attention sink.

Guo et al. 2024 ("Active-dormant attention heads: mechanistically demystifying extreme-token
phenomena in LLMs") train 1-3 layer transformers on this task and watch a sink form on the start
token. A sequence is a chain of characters:

  - the first character is drawn from the source text's character frequencies (triggers excluded);
  - after a NON-trigger character c, the next character follows the bigram transition P(. | c)
    estimated from the source text (default: the King James Bible, letters only);
  - after a TRIGGER character (default: b, w, y), the next character COPIES the character just
    before the trigger.

    ...thesaidwiunthalyasinobostrd...      a "w" at i: chain[i+1] = chain[i-1]   ("dwd" ... )

The copy is the only thing attention is needed for, and only at trigger queries (about 5% of the
positions with the default triggers). Everywhere else the best a head can do is nothing: a softmax
head cannot output nothing, so it parks its weight on a token whose value it has learned to make
harmless, the start token (the sink, "dormant" heads); a sigmoid head simply sets its gates to 0.

Why these choices (the defaults):
  - letters only (--alphabet letters): the text is lowercased and everything but a-z dropped, so
    the chain is over 26 symbols with a bigram entropy of 2.40 nats/char (measured on the KJV).
    --alphabet bytes keeps every byte of the text instead (newlines, digits, capitals, ...).
  - triggers b, w, y: each 1.5-2.0% of the letters of the KJV and each preceded by many different
    letters (the entropy of the letter before them is 2.5-2.7 nats), so a copy is worth about
    2.5 nats and cannot be guessed from the trigger alone. Together they make ~5% of the chain.
  - no trigger is ever next to another trigger: a chain never starts with a trigger, the bigram
    only runs after non-triggers, and a copy copies the letter before a trigger, which therefore
    is a non-trigger. (Without that, "bwbwbw..." would be an absorbing loop.) --check verifies it.
  - length 128 (--length): one sequence of the trainer's --seq 128. Sequences are laid out back to
    back, sequence k at tokens [k*L, (k+1)*L), plus ONE extra token at the end of each shard: the
    trainer cuts a shard into floor((N-1)/T) sequences at multiples of T, so with --seq L (and an
    evaluation with --eval-len L) every training sequence and every evaluation chunk is exactly one
    chain. The trainer's start token (--vocab 257 --bos 256, doc/SPEC.md) then gives each
    chain a BOS: inputs [bos, c_0 .. c_{L-2}], targets c_0 .. c_{L-1}. Tokens are bytes (< 256), so
    the start token 256 never occurs in the data.
  - sizes: train 32768 chains (4.2 M tokens: 1000 steps of 32 x 128 read each chain once), val
    512 chains (65,536 tokens), stream 16 chains of 1024 (one long chain each, for streaming
    evaluation past the window; a reader cuts stream.bin into its chains with meta.json's
    stream_length).
  - --marker BYTE (for trainers without a start token): every sequence becomes [BYTE, L-1 chain
    characters] instead, the start token written into the data (the issue's first quick check).

Files written to OUTDIR (shards in the format of doc/SPEC.md: 256 int32 header
[20240520, 1, N, 0, ...], then N uint16 tokens; here every token is a byte):

    train.bin, val.bin    --train-seqs / --val-seqs chains of --length, back to back, + 1 token
    stream.bin            --stream-seqs chains of --stream-length, back to back, + 1 token
    meta.json             the arguments, the alphabet, the triggers, the start distribution and
                          the bigram matrix (so that --check and readers need nothing else)

Everything is a function of --seed (numpy's PCG64; each file has its own stream) and of the text.

    /usr/bin/python3 data/make_backcopy.py --out data/backcopy           # the defaults
    /usr/bin/python3 data/make_backcopy.py --check data/backcopy         # verify written shards
    /usr/bin/python3 data/make_backcopy.py --self-test                   # generate small, verify, mutate
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # data/shards.py, from any working directory
from shards import read_shard, write_shard

DEFAULT_TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bible", "kjv.txt")


# ---------------------------------------------------------------- the chain model

def source_symbols(raw, alphabet):
    """The text as a sequence of byte values: letters (lowercased a-z only) or every byte."""
    if alphabet == "letters":
        low = raw.lower()
        return np.frombuffer(bytes(c for c in low if 97 <= c <= 122), dtype=np.uint8)
    return np.frombuffer(raw, dtype=np.uint8)


def estimate(symbols, triggers):
    """Alphabet, start distribution (unigram without triggers) and bigram matrix of the text."""
    alpha = np.unique(symbols)                       # sorted byte values that occur
    index = np.full(256, -1, dtype=np.int64)
    index[alpha] = np.arange(len(alpha))
    s = index[symbols]
    A = len(alpha)
    counts = np.zeros((A, A), dtype=np.float64)
    np.add.at(counts, (s[:-1], s[1:]), 1.0)
    uni = np.bincount(s, minlength=A).astype(np.float64)
    trig = np.array([index[t] for t in triggers], dtype=np.int64)
    start = uni.copy()
    start[trig] = 0.0
    start /= start.sum()
    rows = counts.sum(1, keepdims=True)
    # a symbol never followed by anything (it only ends the text) continues from the unigram
    bigram = np.where(rows > 0, counts / np.maximum(rows, 1.0), uni / uni.sum())
    return alpha, start, bigram, trig


def generate(rng, n, length, alpha, start, bigram, trig):
    """n chains of `length` symbols (as byte values), all chains advanced one position at a time."""
    A = len(alpha)
    is_trig = np.zeros(A, dtype=bool)
    is_trig[trig] = True
    cdf = np.cumsum(bigram, axis=1)
    cdf[:, -1] = 1.0                                   # guard against rounding at the top
    x = np.zeros((n, length), dtype=np.int64)           # alphabet indices
    x[:, 0] = np.minimum(np.searchsorted(np.cumsum(start), rng.random(n), side="right"), A - 1)
    for i in range(1, length):
        cur = x[:, i - 1]
        u = rng.random(n)
        nxt = (u[:, None] >= cdf[cur]).sum(1)           # inverse-CDF draw per chain
        nxt = np.minimum(nxt, A - 1)
        if i >= 2:
            copy = is_trig[cur]
            nxt = np.where(copy, x[:, i - 2], nxt)
        x[:, i] = nxt
    return alpha[x].astype(np.uint16)


def with_marker(chains, marker):
    """[marker, first L-1 characters] per sequence (for trainers without a start token)."""
    out = chains.copy()
    out[:, 1:] = chains[:, :-1]
    out[:, 0] = marker
    return out


def make(a):
    raw = open(a.text, "rb").read()
    symbols = source_symbols(raw, a.alphabet)
    if len(symbols) < 2:
        sys.exit(f"error: {a.text} holds fewer than 2 symbols of the alphabet '{a.alphabet}'")
    triggers = [ord(c) for c in a.triggers]
    if len(set(triggers)) != len(triggers) or not triggers:
        sys.exit("error: --triggers must be distinct characters (at least one)")
    present = set(np.unique(symbols).tolist())
    for t in triggers:
        if t not in present:
            sys.exit(f"error: trigger {chr(t)!r} does not occur in the text's alphabet")
    if a.length < 3 or a.stream_length < 3:
        sys.exit("error: --length and --stream-length must be at least 3")
    if a.marker is not None and (a.marker in present or not 0 <= a.marker < 256):
        sys.exit("error: --marker must be a byte that does not occur in the chains")
    alpha, start, bigram, trig = estimate(symbols, triggers)
    if len(trig) == len(alpha):
        sys.exit("error: every symbol is a trigger")
    os.makedirs(a.out, exist_ok=True)
    names = ["train", "val", "stream"]
    streams = dict(zip(names, np.random.SeedSequence(a.seed).spawn(len(names))))
    sizes = dict(train=(a.train_seqs, a.length), val=(a.val_seqs, a.length), stream=(a.stream_seqs, a.stream_length))
    for name in names:
        n, length = sizes[name]
        rng = np.random.default_rng(streams[name])
        seqs = generate(rng, n, length, alpha, start, bigram, trig)
        if a.marker is not None and name != "stream":
            seqs = with_marker(seqs, a.marker)
        write_shard(os.path.join(a.out, name + ".bin"), seqs, int(alpha[np.argmax(start)]))
    meta = dict(text=os.path.abspath(a.text), alphabet=a.alphabet, symbols=alpha.tolist(),
                triggers=a.triggers, trigger_bytes=triggers, length=a.length, train_seqs=a.train_seqs,
                val_seqs=a.val_seqs, stream_length=a.stream_length, stream_seqs=a.stream_seqs,
                marker=a.marker, seed=a.seed, start=start.tolist(), bigram=bigram.tolist(),
                bigram_entropy=float(bigram_entropy(start, bigram, trig)))
    with open(os.path.join(a.out, "meta.json.tmp"), "w") as f:
        json.dump(meta, f)
    os.replace(os.path.join(a.out, "meta.json.tmp"), os.path.join(a.out, "meta.json"))  # last: data complete
    if not a.quiet:
        print(f"wrote {a.out}: train {a.train_seqs} x {a.length}, val {a.val_seqs} x {a.length}, "
              f"stream {a.stream_seqs} x {a.stream_length}; {len(alpha)} symbols, triggers {a.triggers!r}"
              + (f", marker {a.marker}" if a.marker is not None else ""))


def bigram_entropy(start, bigram, trig):
    """Entropy rate (nats/char) of the text's bigram, weighted by the text's unigram over
    non-triggers: a reference for the loss on non-trigger positions."""
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(bigram > 0, bigram * np.log(bigram), 0.0).sum(1)
    return float((start * h).sum())


# ---------------------------------------------------------------- checks

def check(out, quiet=False):
    """Verify the shards of `out` against its meta.json. Returns a list of failure messages.

    For every chain: the first character is not a trigger; every character after a trigger is
    the character before the trigger; no two triggers are adjacent; every symbol is in the
    alphabet. Over all non-trigger positions: the empirical transition frequencies agree with
    the bigram matrix (for each current symbol with at least 200 transitions, every next-symbol
    frequency within 5 standard errors + 0.005 of its probability, and the total chi-square
    of the file, over the cells expecting at least 5 transitions with the others pooled,
    below its 99.99% bound), and no transition of probability 0 occurs."""
    meta = json.load(open(os.path.join(out, "meta.json")))
    alpha = np.array(meta["symbols"], dtype=np.int64)
    index = np.full(65536, -1, dtype=np.int64)
    index[alpha] = np.arange(len(alpha))
    trig_bytes = np.array(meta["trigger_bytes"], dtype=np.int64)
    bigram = np.array(meta["bigram"])
    marker = meta["marker"]
    fails = []
    stats = {}
    for name, length, nseq in (("train", meta["length"], meta["train_seqs"]), ("val", meta["length"], meta["val_seqs"]),
                               ("stream", meta["stream_length"], meta["stream_seqs"])):
        toks = read_shard(os.path.join(out, name + ".bin")).astype(np.int64)
        if len(toks) != nseq * length + 1:
            fails.append(f"{name}: {len(toks)} tokens, expected {nseq * length + 1}")
            continue
        if toks.max() >= 256:
            fails.append(f"{name}: token {toks.max()} >= 256")
        seqs = toks[:-1].reshape(nseq, length)
        if marker is not None and name != "stream":
            if not (seqs[:, 0] == marker).all():
                fails.append(f"{name}: a sequence does not start with the marker {marker}")
            seqs = seqs[:, 1:]
        x = index[seqs]
        if (x < 0).any():
            fails.append(f"{name}: a token outside the alphabet")
            continue
        trig = np.isin(seqs, trig_bytes)
        if trig[:, 0].any():
            fails.append(f"{name}: a chain starts with a trigger")
        adjacent = trig[:, 1:] & trig[:, :-1]
        if adjacent.any():
            fails.append(f"{name}: {int(adjacent.sum())} pairs of adjacent triggers")
        # the copy rule: trigger at i (1 <= i <= len-2) -> seqs[i+1] == seqs[i-1]
        t_at = trig[:, 1:-1]
        bad = t_at & (seqs[:, 2:] != seqs[:, :-2])
        if bad.any():
            s, i = np.argwhere(bad)[0]
            fails.append(f"{name}: {int(bad.sum())} of {int(t_at.sum())} copies broken (first: chain {s}, "
                         f"position {i + 2} is {seqs[s, i + 2]}, expected {seqs[s, i]})")
        # the bigram after non-triggers
        cur, nxt = x[:, :-1][~trig[:, :-1]], x[:, 1:][~trig[:, :-1]]
        counts = np.zeros_like(bigram)
        np.add.at(counts, (cur, nxt), 1.0)
        impossible = (counts > 0) & (bigram == 0)
        if impossible.any():
            fails.append(f"{name}: {int(counts[impossible].sum())} transitions of probability 0")
        rows = counts.sum(1)
        chi2, dof, worst = 0.0, 0, 0.0
        for r in np.nonzero(rows >= 200)[0]:
            p = bigram[r]
            f = counts[r] / rows[r]
            se = np.sqrt(p * (1 - p) / rows[r])
            dev = np.abs(f - p) - (5 * se + 0.005)
            worst = max(worst, float(dev.max()))
            # Pearson's chi-square on the cells expecting >= 5 transitions, the others pooled
            expected = rows[r] * p
            big = expected >= 5
            obs = np.append(counts[r][big], counts[r][~big].sum())
            exp = np.append(expected[big], expected[~big].sum())
            keep = exp > 0
            chi2 += float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum())
            dof += int(keep.sum()) - 1
        if worst > 0:
            fails.append(f"{name}: a bigram frequency is off by {worst:.4f} beyond 5 standard errors + 0.005")
        # 99.99% bound of chi-square(dof) by the Wilson-Hilferty approximation (z = 3.719)
        bound = dof * (1 - 2 / (9 * dof) + 3.719 * math.sqrt(2 / (9 * dof))) ** 3 if dof else 0.0
        if dof and chi2 > bound:
            fails.append(f"{name}: bigram chi-square {chi2:.0f} above its 99.99% bound {bound:.0f} ({dof} dof)")
        stats[name] = dict(chains=nseq, trigger_rate=float(trig.mean()), copies=int(t_at.sum()),
                           chi2=round(chi2, 1), dof=dof)
    if not quiet:
        for name, s in stats.items():
            print(f"check {name}: {s['chains']} chains, triggers {100 * s['trigger_rate']:.2f}% of positions, "
                  f"{s['copies']} copies all correct" if not any(f.startswith(name) for f in fails)
                  else f"check {name}: FAILED", f"(bigram chi-square {s['chi2']} on {s['dof']} dof)")
        for f in fails:
            print("FAIL " + f)
    return fails


def self_test():
    """Generate small shards, check them, check determinism, and check that --check catches a
    broken copy and a broken bigram. Prints "N passed, M failed"."""
    results = []

    def expect(name, ok):
        results.append(ok)
        print(("PASS " if ok else "FAIL ") + name)

    tmp = tempfile.mkdtemp(prefix="backcopy_test_")
    try:
        base = ["--train-seqs", "2000", "--val-seqs", "100", "--stream-seqs", "4", "--stream-length", "512"]
        text = os.path.join(tmp, "text.txt")
        if os.path.exists(DEFAULT_TEXT):
            shutil.copy(DEFAULT_TEXT, text)
        else:  # without `make data`: a small text with every letter, repeated
            with open(text, "w") as f:
                f.write("the quick brown fox jumps over the lazy dog; by the way, where is my big yellow box? " * 2000)
        a = os.path.join(tmp, "a")
        main(["--out", a, "--text", text, "--seed", "7", "--quiet"] + base)
        expect("generated shards pass --check", check(a, quiet=True) == [])
        meta = json.load(open(os.path.join(a, "meta.json")))
        expect("the shard sizes are chains x length + 1",
               len(read_shard(os.path.join(a, "train.bin"))) == 2000 * 128 + 1
               and len(read_shard(os.path.join(a, "stream.bin"))) == 4 * 512 + 1)
        toks = read_shard(os.path.join(a, "train.bin"))
        rate = np.isin(toks, meta["trigger_bytes"]).mean()
        expect(f"triggers are a few percent of the chain ({100 * rate:.2f}%)", 0.01 < rate < 0.15)
        b = os.path.join(tmp, "b")
        main(["--out", b, "--text", text, "--seed", "7", "--quiet"] + base)
        same = all(open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read()
                   for f in ("train.bin", "val.bin", "stream.bin"))
        expect("the same seed gives identical shards", same)
        c = os.path.join(tmp, "c")
        main(["--out", c, "--text", text, "--seed", "8", "--quiet"] + base)
        expect("another seed gives other shards",
               open(os.path.join(a, "train.bin"), "rb").read() != open(os.path.join(c, "train.bin"), "rb").read())
        # break one copy: the character after the first trigger of the val shard
        path = os.path.join(a, "val.bin")
        raw = bytearray(open(path, "rb").read())
        v = np.frombuffer(bytes(raw[1024:]), dtype="<u2").copy()
        seqs = v[:-1].reshape(-1, 128)
        s, i = np.argwhere(np.isin(seqs[:, 1:-1], meta["trigger_bytes"]))[0]
        i += 1
        good = v[s * 128 + i + 1]
        other = next(x for x in meta["symbols"] if x != good and x not in meta["trigger_bytes"])
        v[s * 128 + i + 1] = other
        open(path, "wb").write(bytes(raw[:1024]) + v.astype("<u2").tobytes())
        expect("--check catches one broken copy", any("copies broken" in f for f in check(a, quiet=True)))
        v[s * 128 + i + 1] = good
        open(path, "wb").write(bytes(raw[:1024]) + v.astype("<u2").tobytes())
        expect("restored shard passes again", check(a, quiet=True) == [])
        # a bigram drawn from another distribution: replace the train shard's non-copy transitions
        rng = np.random.default_rng(0)
        idx = np.array(meta["symbols"])
        nontrig = idx[~np.isin(idx, meta["trigger_bytes"])]
        uniform = rng.choice(nontrig, size=(2000, 128)).astype(np.uint16)
        write_shard(os.path.join(a, "train.bin"), uniform, 97 if 97 in idx else int(idx[0]))
        expect("--check catches a wrong bigram", any("bigram" in f or "probability 0" in f for f in check(a, quiet=True)))
        # the marker layout
        d = os.path.join(tmp, "d")
        main(["--out", d, "--text", text, "--seed", "7", "--marker", "35", "--quiet"] + base)
        dv = read_shard(os.path.join(d, "train.bin"))
        expect("--marker starts every sequence with the marker and passes --check",
               (dv[:-1].reshape(-1, 128)[:, 0] == 35).all() and check(d, quiet=True) == [])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="output directory (created if missing)")
    ap.add_argument("--text", default=DEFAULT_TEXT, help="source text of the bigram (default: the KJV of make data)")
    ap.add_argument("--alphabet", choices=["letters", "bytes"], default="letters")
    ap.add_argument("--triggers", default="bwy", help="trigger characters (default bwy)")
    ap.add_argument("--length", type=int, default=128, help="characters per training/val sequence (default 128)")
    ap.add_argument("--train-seqs", type=int, default=32768)
    ap.add_argument("--val-seqs", type=int, default=512)
    ap.add_argument("--stream-length", type=int, default=1024)
    ap.add_argument("--stream-seqs", type=int, default=16)
    ap.add_argument("--marker", type=int, help="a byte written at the start of every train/val sequence")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--check", metavar="DIR", help="verify the shards in DIR against its meta.json and exit")
    ap.add_argument("--self-test", action="store_true", help="generate small shards, verify them, exit")
    a = ap.parse_args(argv)
    if a.self_test:
        sys.exit(self_test())
    if a.check:
        sys.exit(1 if check(a.check) else 0)
    if not a.out:
        ap.error("--out is required (or --check DIR / --self-test)")
    if not os.path.exists(a.text):
        sys.exit(f"error: {a.text} not found (the default text comes from `make data`)")
    make(a)


if __name__ == "__main__":
    main()
