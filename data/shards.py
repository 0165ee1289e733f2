"""Token shards of synthetic examples, for data/make_recall.py and data/make_backcopy.py.

The shard format of doc/SPEC.md: a header of 256 int32 [20240520, 1, N, 0, ...], then N uint16
tokens. The generators lay their examples (sequences of one length) back to back and add ONE
extra token at the end: the trainer cuts a shard into floor((N-1)/T) sequences and the evaluator
into floor((N-1)/E) chunks (each chunk's last prediction needs the next token), so with that
extra token every example is exactly one training sequence (--seq T) and exactly one evaluation
chunk (--eval-len E).

The generators import it from their own folder, whatever the working directory:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from shards import read_shard, write_shard
"""
import os

import numpy as np

MAGIC, VERSION = 20240520, 1


def write_shard(path, examples, tail):
    """examples (an array of token rows) back to back plus the one trailing token tail, written to
    a temporary name and renamed, so that an interrupted run never leaves half a shard."""
    toks = np.concatenate([examples.reshape(-1), np.array([tail], dtype=np.uint16)])
    header = np.zeros(256, dtype="<i4")
    header[:3] = [MAGIC, VERSION, len(toks)]
    with open(path + ".tmp", "wb") as f:
        f.write(header.tobytes())
        f.write(toks.astype("<u2").tobytes())
    os.replace(path + ".tmp", path)


def read_shard(path):
    """The tokens of a shard; ValueError if its header or size is not that of a shard."""
    data = open(path, "rb").read()
    header = np.frombuffer(data[:1024], dtype="<i4")
    if header[0] != MAGIC or header[1] != VERSION:
        raise ValueError(f"{path}: bad shard header {header[:3].tolist()}")
    n = int(header[2])
    if len(data) != 1024 + 2 * n:
        raise ValueError(f"{path}: size {len(data)} does not match N = {n}")
    return np.frombuffer(data, dtype="<u2", count=n, offset=1024)
