#!/usr/bin/env python3
"""Synthetic key-recall shards: can a model fetch information from beyond its attention window?

Each example is a fixed-length byte string (default 128 bytes), for example:

    xznonunjlcghnuwangrrftblxyz#1EPljfghdyhoruotjckwhidxhpjexnbgjfrsbzxd?1EPcteqjhsxjmluoivoo
                               ^ key marker at p                        ^ query marker at p + d

- filler: random lowercase letters, drawn uniformly and independently, so a model cannot
  predict them better than log(26) nats and cannot use them for anything clever;
- a key marker `#` at position p, followed by a random key of K symbols;
- a query marker `?` at position p + d, followed by the same K symbols.

The query marker comes at a random place, so it is not predictable; the K symbols after it are,
but only by a model that can still "see" the key d positions back. That is the whole test: the
loss on those K symbols, measured per example, as a function of the distance d.

The key. Symbol j of the key is drawn from its own alphabet (--key, default: a digit 0-9, then a
letter A-J, then a letter K-T, so 1000 keys, e.g. "1EP"). Separate alphabets make the order of
the symbols explicit in the symbols themselves: a model that has gathered "the key" can tell
which symbol comes next without also having to remember positions. With plain digits ("4711")
the small models of dev/recall.py learn which digits the key holds long before they learn their
order, which costs far more training than the demonstration has. `--key 0123456789` gives a
one-digit key; `--key 0123456789,0123456789,0123456789,0123456789` gives "#4711".

The distance d = (query marker position) - (key marker position) lies in K+1 .. E-K-1 (the key
must end before the query starts, and the query's symbols must fit in the example); p is drawn
uniformly among the positions that fit. The example's bytes are positions 0..E-1.

Files written to OUTDIR (shard format of SWAT_SPEC.md section 4: 256 int32 header
[20240520, 1, N, 0...] then N uint16 tokens, bytes as tokens):

    train.bin          --train-examples examples, d from --train-dmin .. --train-dmax
    val.bin            --val-examples examples, same distribution as train
    test.bin           for each D in --test-d in turn, --test-examples examples with distance
                       exactly D: example i has distance test_d[i // test_examples]
    meta.json          the arguments, so that readers know E, K and the distances

Training distances are log-uniform by default (--train-dist): each scale (4-8, 8-16, 16-32, ...)
gets the same share. With uniform distances over 4..124 and a window of 16, only 1 example in 10
can be solved inside the window, where a model first learns to copy at all, and the small models
learned nothing in the budget; log-uniform puts a third there and still a fifth beyond 61.

Every shard holds its examples back to back and then ONE extra filler byte. The trainer cuts a
shard into floor((N-1)/T) sequences and the evaluator into floor((N-1)/E) chunks (each chunk's
last prediction needs the next token), so with that extra byte every example is exactly one
training sequence (with --seq E) and exactly one evaluation chunk (with --eval-len E).

Everything is a function of --seed (numpy's PCG64 via default_rng), and each file gets its own
stream, so changing the test distances or counts does not change the training data.

    /usr/bin/python3 data/make_recall.py --out data/recall            # the defaults
    /usr/bin/python3 data/make_recall.py --out /tmp/r --length 64 --key 0123456789 --test-d 4,8,16
"""
import argparse
import json
import os
import sys

import numpy as np

MAGIC, VERSION = 20240520, 1
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


def write_shard(path, examples, tail_token):
    """Examples back to back plus one trailing token (see the module docstring), written to a
    temporary name and renamed, so an interrupted run never leaves half a shard."""
    toks = np.concatenate([examples.reshape(-1), np.array([tail_token], dtype=np.uint16)])
    header = np.zeros(256, dtype="<i4")
    header[:3] = [MAGIC, VERSION, len(toks)]
    with open(path + ".tmp", "wb") as f:
        f.write(header.tobytes())
        f.write(toks.astype("<u2").tobytes())
    os.replace(path + ".tmp", path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    ap.add_argument("--length", type=int, default=128, help="bytes per example E (default 128)")
    ap.add_argument("--key", default="0123456789,ABCDEFGHIJ,KLMNOPQRST",
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
          f"val {a.val_examples}, {len(test_d)} test distances x {a.test_examples}, key of {K} symbols")


if __name__ == "__main__":
    main()
