#!/usr/bin/env python3
"""Synthetic key-recall shards: can a model fetch information from beyond its attention window?

Each example is a fixed-length byte string (default 128 bytes), for example (shortened):

    xznonunjlcghnuwangrrftblxyz#Qljfghdyhoruotjckwhidxhpjexnbgjfrsbzxdqlvmro?Qcteqjhsxjmluoivoo
                               ^ key marker at p                            ^ query marker at p + d

- filler: random lowercase letters, drawn uniformly and independently, so a model cannot
  predict them better than log(26) nats and cannot use them for anything clever;
- a key marker `#` at position p, followed by a random key of K symbols;
- a query marker `?` at position p + d, followed by the same K symbols.

The query marker comes at a random place, so it is not predictable; the key after it is, but
only by a model that can still "see" the key d positions back. That is the whole test: the loss
on the K query symbols, measured per example, as a function of the distance d.

The key (--key): comma-separated alphabets, symbol j of the key drawn from alphabet j. The
default is ONE symbol from 0-9A-Z (36 keys, 5.2 bits: "#Q ... ?Q"), because that is what the
small models of dev/recall.py learn to relay within their budget (8000 steps of 16 examples).
What else was tried (dim 64-128, 2500-4000 steps):
  --key 0123456789,0123456789,0123456789,0123456789    "#4711": full attention and 2-layer SWAT
      learned which digits the key holds (p ~0.27 for each) but not their order; 4-layer SWAT
      learned nothing;
  --key 0123456789,ABCDEFGHIJ,KLMNOPQRST                "#1EP": separate alphabets make the
      order explicit, but each symbol's copy circuit is learned on its own, one after the
      other: after 4000 steps, 4-layer SWAT recalled one of the three symbols.

The distance d = (query marker position) - (key marker position) lies in K+1 .. E-K-1 (the key
must end before the query starts, and the query's symbols must fit in the example); p is drawn
uniformly among the positions that fit. The example's bytes are positions 0..E-1.

Files written to OUTDIR (shard format of doc/SPEC.md: 256 int32 header
[20240520, 1, N, 0...] then N uint16 tokens, bytes as tokens):

    train.bin          --train-examples examples, d from --train-dmin .. --train-dmax
    val.bin            --val-examples examples, same distribution as train
    test.bin           for each D in --test-d in turn, --test-examples examples with distance
                       exactly D: example i has distance test_d[i // test_examples]
    meta.json          the arguments, so that readers know E, K and the distances

Training distances are log-uniform by default (--train-dist): each scale (4-8, 8-16, 16-32, ...)
gets the same share. Uniform distances over 2..126 with a window of 16 would put only 1 example
in 8 inside the window, where a model first learns to copy at all (with uniform distances and the
4-digit key, a 4-layer SWAT model learned nothing in 2500 steps); log-uniform puts about half of
them there and still a sixth beyond 61, the largest receptive field of dev/recall.py.

Every shard holds its examples back to back and then ONE extra filler byte. The trainer cuts a
shard into floor((N-1)/T) sequences and the evaluator into floor((N-1)/E) chunks (each chunk's
last prediction needs the next token), so with that extra byte every example is exactly one
training sequence (with --seq E) and exactly one evaluation chunk (with --eval-len E).

Everything is a function of --seed (numpy's PCG64 via default_rng), and each file gets its own
stream, so changing the test distances or counts does not change the training data.

    /usr/bin/python3 data/make_recall.py --out data/recall            # the defaults
    /usr/bin/python3 data/make_recall.py --out /tmp/r --length 64 --key 0123456789,ABCDEFGHIJ --test-d 4,8,16
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # data/shards.py, from any working directory
from shards import write_shard

KEY_MARK, QUERY_MARK = ord("#"), ord("?")


def as_tokens(chars):
    return np.frombuffer(chars.encode(), dtype=np.uint8).astype(np.uint16)


def make_examples(rng, dists, length, key_alphabets, filler):
    """One example per entry of dists (the distance of each), as an (n, length) uint16 array."""
    n, K = len(dists), len(key_alphabets)
    fill = as_tokens(filler)
    x = fill[rng.integers(0, len(fill), size=(n, length))]
    # the key marker p must satisfy p >= 0 and p + d + K <= length - 1 (the query's last symbol)
    pmax = length - 1 - K - dists
    p = (rng.random(n) * (pmax + 1)).astype(np.int64)
    keys = np.stack([as_tokens(ka)[rng.integers(0, len(ka), size=n)] for ka in key_alphabets], axis=1)
    rows = np.arange(n)
    x[rows, p] = KEY_MARK
    x[rows, p + dists] = QUERY_MARK
    for j in range(K):
        x[rows, p + 1 + j] = keys[:, j]
        x[rows, p + dists + 1 + j] = keys[:, j]
    return x


def draw_distances(rng, n, dmin, dmax, how):
    if how == "uniform":
        return rng.integers(dmin, dmax + 1, size=n)
    u = rng.uniform(np.log(dmin), np.log(dmax + 1), size=n)  # log-uniform on [dmin, dmax+1)
    return np.minimum(np.floor(np.exp(u)).astype(np.int64), dmax)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    ap.add_argument("--length", type=int, default=128, help="bytes per example E (default 128)")
    ap.add_argument("--key", default="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                    help="comma-separated alphabets, one per key symbol; K = their number")
    ap.add_argument("--filler", default="abcdefghijklmnopqrstuvwxyz", help="filler alphabet")
    ap.add_argument("--train-examples", type=int, default=100000)
    ap.add_argument("--val-examples", type=int, default=1000)
    ap.add_argument("--test-examples", type=int, default=200, help="examples per test distance")
    ap.add_argument("--train-dmin", type=int, help="default K+1, the smallest that fits")
    ap.add_argument("--train-dmax", type=int, help="default E-K-1, the largest that fits")
    ap.add_argument("--train-dist", choices=["loguniform", "uniform"], default="loguniform")
    ap.add_argument("--test-d", default="8,12,16,24,32,48,64,96", help="comma-separated test distances")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)

    key_alphabets = a.key.split(",")
    E, K = a.length, len(key_alphabets)
    lo, hi = K + 1, E - K - 1                       # the distances that fit in an example
    dmin = lo if a.train_dmin is None else a.train_dmin
    dmax = hi if a.train_dmax is None else a.train_dmax
    test_d = [int(v) for v in a.test_d.split(",") if v.strip()]
    for d in [dmin, dmax] + test_d:
        if not lo <= d <= hi:
            sys.exit(f"error: distance {d} does not fit: with --length {E} and a {K}-symbol key it must be in {lo}..{hi}")
    if dmin > dmax:
        sys.exit("error: --train-dmin > --train-dmax")
    key_chars = "".join(key_alphabets)
    if "" in key_alphabets or not (a.filler + key_chars).isascii():
        sys.exit("error: the alphabets must be non-empty and ASCII")
    if set(a.filler) & set("#?" + key_chars) or set("#?") & set(key_chars):
        sys.exit("error: the filler, the key alphabets and the markers '#', '?' must not share bytes")

    os.makedirs(a.out, exist_ok=True)
    # one independent random stream per file: SeedSequence(seed).spawn gives reproducible children
    names = ["train", "val", "test"]
    streams = dict(zip(names, np.random.SeedSequence(a.seed).spawn(len(names))))
    for name in names:
        rng = np.random.default_rng(streams[name])
        if name == "test":
            dists = np.repeat(np.array(test_d, dtype=np.int64), a.test_examples)
        else:
            n = a.train_examples if name == "train" else a.val_examples
            dists = draw_distances(rng, n, dmin, dmax, a.train_dist)
        write_shard(os.path.join(a.out, name + ".bin"), make_examples(rng, dists, E, key_alphabets, a.filler),
                    ord(a.filler[0]))

    meta = dict(length=E, key_len=K, key_alphabets=key_alphabets, filler=a.filler, seed=a.seed,
                train_examples=a.train_examples, val_examples=a.val_examples, test_examples=a.test_examples,
                train_dmin=dmin, train_dmax=dmax, train_dist=a.train_dist, test_d=test_d)
    with open(os.path.join(a.out, "meta.json.tmp"), "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(os.path.join(a.out, "meta.json.tmp"), os.path.join(a.out, "meta.json"))  # last: marks the data complete
    print(f"wrote {a.out}: train {a.train_examples} x {E} bytes (d {dmin}..{dmax}, {a.train_dist}), "
          f"val {a.val_examples}, {len(test_d)} test distances x {a.test_examples}, key of {K} symbol{'s' if K > 1 else ''}")


if __name__ == "__main__":
    main()
