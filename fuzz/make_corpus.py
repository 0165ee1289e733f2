#!/usr/bin/python3
"""Write the seed corpora of the fuzz targets (standard library only; deterministic):

    /usr/bin/python3 fuzz/make_corpus.py        -> fuzz/corpus/{fuzz_checkpoint,fuzz_shard,fuzz_args}/

Valid small inputs only; fuzz/run.sh adds the bad files of tests/bad/ as further seeds.
The checkpoint and shard writers are the ones of tests/make_bad_files.py. Checkpoints are
version 2 (right CRC; some with a start token) and a few version 1 files (v1_*), since both
are read. One seed keeps a wrong CRC whose low 4 bits are 1 (crc_kept_wrong.ckpt): the
value that tells fuzz_checkpoint.c not to fix the CRC, so the checksum path has a seed too.
nan_in_exp_regression.bin (version 1) is a committed crash input, not written here; its
version 2 twin is.
"""
import importlib.util
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("mbf", os.path.join(HERE, "..", "tests", "make_bad_files.py"))
mbf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mbf)


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    base = os.path.join(HERE, "corpus")
    ck = os.path.join(base, "fuzz_checkpoint")
    T = mbf.TINY
    write(ck, "tiny_no_state.ckpt", mbf.ckpt_bytes(state=0))
    write(ck, "tiny_state.ckpt", mbf.ckpt_bytes())
    write(ck, "tiny_state_shuffled.ckpt", mbf.ckpt_bytes(ints={"shuffle": 1, "cursor": 5, "epoch": 3}))
    write(ck, "tiny_state_shuffled_epoch_end.ckpt", mbf.ckpt_bytes(ints={"shuffle": 1, "cursor": 24}))
    write(ck, "tiny_state_cursor_100.ckpt", mbf.ckpt_bytes(ints={"cursor": 100, "warmup": 2, "steps": 9}))
    # the start token (header[16]): the first and the last id, with and without trainer state
    write(ck, "bos0_state.ckpt", mbf.ckpt_bytes(bos=0))
    write(ck, "bos15_no_state.ckpt", mbf.ckpt_bytes(state=0, bos=15))
    write(ck, "bos15_state_shuffled.ckpt", mbf.ckpt_bytes(bos=15, ints={"shuffle": 1, "cursor": 3}))
    # version 1: 2^-k slopes, no start token, no checksum
    write(ck, "v1_tiny_no_state.ckpt", mbf.ckpt_bytes(state=0, version=1))
    write(ck, "v1_tiny_state.ckpt", mbf.ckpt_bytes(version=1))
    # a wrong CRC that fuzz_checkpoint.c keeps (low 4 bits all 1): the checksum error
    good = mbf.ckpt_bytes(state=0)
    wrong = (struct.unpack("<I", good[68:72])[0] ^ 0x100) | 0xF
    write(ck, "crc_kept_wrong.ckpt", good[:68] + struct.pack("<I", wrong) + good[72:])
    reg = os.path.join(ck, "nan_in_exp_regression.bin")
    if os.path.exists(reg):
        old = open(reg, "rb").read()
        if len(old) >= 1024 and struct.unpack("<2i", old[:8]) == (mbf.CKPT_MAGIC, 1):
            write(ck, "nan_in_exp_regression_v2.bin", mbf.fix_crc(old[:4] + struct.pack("<i", 2) + old[8:64] +
                                                                  struct.pack("<i", -1) + old[68:]))
    variants = {
        "softmax_norope_alibi0.ckpt": dict(T, attn=1, rope=0, neg=0, pos=0),
        "window1_alibi2_0.ckpt": dict(T, w=1, neg=2, pos=0),
        "vanilla_window_big.ckpt": dict(T, w=1 << 30, T=0),
        "heads1_L2.ckpt": dict(T, H=1, L=2, neg=0, pos=1, F=3),
        "vocab1.ckpt": dict(T, V=1),
        "c6_h3_norope.ckpt": dict(T, C=6, H=3, rope=0, neg=1, pos=2),
        "h6_c12_alibi3_3.ckpt": dict(T, C=12, H=6, neg=3, pos=3),
    }
    for name, cfg in variants.items():
        p = [((i * 13) % 17 - 8) * 0.03 for i in range(mbf.param_count(cfg))]
        write(ck, name, mbf.ckpt_bytes(c=cfg, state=0, p=p))
    # H = 6: the slopes differ between the versions (2^-k in 1, 2^(-8k/H) in 2)
    cfg = variants["h6_c12_alibi3_3.ckpt"]
    p = [((i * 13) % 17 - 8) * 0.03 for i in range(mbf.param_count(cfg))]
    write(ck, "v1_h6_c12_alibi3_3.ckpt", mbf.ckpt_bytes(c=cfg, state=0, p=p, version=1))
    write(ck, "vocab1_bos0.ckpt", mbf.ckpt_bytes(c=variants["vocab1.ckpt"], state=0, bos=0,
                                               p=[0.01] * mbf.param_count(variants["vocab1.ckpt"])))
    sh = os.path.join(base, "fuzz_shard")
    write(sh, "ok16.bin", mbf.shard_bytes(mbf.OK16))
    write(sh, "text300.bin", mbf.shard_bytes(mbf.text_tokens(300, 5)))
    write(sh, "two_tokens.bin", mbf.shard_bytes([1, 2]))
    # header words 3..8 select V, B, T, shuffle, E, W in fuzz_shard.c
    head = [20240520, 1, 40, 999, 1, 7, 1, 4, 2] + [0] * 247
    write(sh, "params_set.bin", struct.pack("<256i", *head) + struct.pack("<40H", *[(i * 37) % 1000 for i in range(40)]))
    # words 9, 10: the start token and keep_first. The tokens go up to 999 (the model's
    # vocabulary is 1000): word 9 = 1 is start token 0, 1001 is 1000 (the vocabulary made
    # one larger for it); the loader takes it only when it is below V = 999 of word 3
    tok = struct.pack("<40H", *[(i * 37) % 1000 for i in range(40)])
    write(sh, "params_bos0.bin", struct.pack("<256i", *(head[:9] + [1, 2] + [0] * 245)) + tok)
    write(sh, "params_bos_vocab_plus_1.bin", struct.pack("<256i", *(head[:3] + [1000] + head[4:9] + [1001, 3] + [0] * 245)) + tok)
    ar = os.path.join(base, "fuzz_args")
    cmds = {
        "train.txt": "--train data/bible/train.bin --val data/bible/val.bin --steps 10 --warmup 2 --batch 4 --seq 64",
        "model.txt": "--layers 2 --heads 4 --dim 64 --ffn 96 --window 16 --attn softmax --alibi 2:1 --rope off",
        "opt.txt": "--lr 3e-3 --min-lr-ratio 0.2 --wd 0.05 --clip 0.5 --beta1 0.8 --beta2 0.99 --seed 5 --shuffle off",
        "resume.txt": "--resume out/model.ckpt --train x.bin --stop-after 3 --save-every 2 --val-every 0",
        "eval.txt": "--init m.ckpt --eval v.bin --eval-len 512 --eval-window 32 --eval-chunks 4 --stream",
        "generate.txt": "--init m.ckpt --generate 40 --prompt hello --temperature 0.7 --top-k 5 --threads 2",
        "init_bad.txt": "--init m.ckpt --layers 3 --rope-theta 500 --vocab 16",
    }
    for name, cmd in cmds.items():
        write(ar, name, cmd.replace(" ", "\0").encode())


if __name__ == "__main__":
    main()
