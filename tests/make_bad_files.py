#!/usr/bin/python3
"""Generate the corpus of bad input files for tests/reliability.sh (standard library only).

    /usr/bin/python3 tests/make_bad_files.py [BADDIR] [--valid VALIDDIR]

BADDIR (default tests/bad) receives one small bad token shard or checkpoint per case and the
file EXPECTED, one line per case:  FILE <TAB> MODE <TAB> SUBSTRING
MODE says how reliability.sh feeds the file to train_swat:
    train   --train FILE (tiny model, V=256)
    val     --train ok_shard256.bin --val FILE
    eval    --init ok_ckpt.ckpt --eval FILE          (the checkpoint has V=16)
    init    --init FILE --eval ok_shard16.bin
    resume  --resume FILE --train ok_shard16.bin
and SUBSTRING is what the one-line error message must contain.

With --valid VALIDDIR the valid helper files are written there too: ok_shard16.bin (tokens
< 16), ok_shard256.bin, ok_ckpt.ckpt (version 2, no trainer state), ok_ckpt_state.ckpt
(version 2 with trainer state, resumable on ok_shard16.bin), ok_ckpt_bos.ckpt (version 2,
start token 15 = V-1), ok_ckpt_v1.ckpt and ok_ckpt_state_v1.ckpt (the same models as version
1 files), and text shards train.bin, small.bin, val.bin for the training tests. Everything is
deterministic: running the script twice gives the same bytes.

Checkpoints (spec section 3) are version 2 unless a case says otherwise: header[16] is the
start token (-1 = none) and header[17] the CRC-32 (zlib.crc32) of the whole file computed
with field 17 set to 0. Every bad file aimed at a check after the CRC carries the CRC of its
own bytes (fix_crc), so that it reaches the check it was written for; the crc_* cases are
the ones whose CRC is wrong on purpose. Version 1 files (v1_* cases, ok_ckpt_v1.ckpt) have
fields 16 and 17 at 0 and no checksum.

The tiny checkpoint model: V=16 L=1 H=2 C=4 F=4 window 4, sigmoid, ALiBi 1:1, RoPE, T=8,
252 parameters, so a checkpoint is about 2 KB (about 4 KB with the optimizer state).
"""
import os
import struct
import sys
import zlib

SHARD_MAGIC = 20240520
CKPT_MAGIC = 0x54415753
STATE_MAGIC = 0x4E55525454415753

# ---- shards -------------------------------------------------------------------------------


def shard_bytes(tokens, magic=SHARD_MAGIC, version=1, count=None):
    n = len(tokens) if count is None else count
    head = [magic, version, n] + [0] * 253
    return struct.pack("<256i", *head) + struct.pack("<%dH" % len(tokens), *tokens)


def text_tokens(n, seed):
    """Deterministic English-like bytes (an LCG picks words), so small models learn a bit."""
    words = ("in the beginning god created heaven and earth and the earth was without form "
             "and void and darkness was upon the face of the deep and the spirit of god moved "
             "upon the face of the waters and god said let there be light and there was light").split()
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        w = words[(x >> 33) % len(words)]
        out += w.encode() + (b".\n" if (x >> 20) % 13 == 0 else b" ")
    return list(out[:n])


# ---- checkpoints --------------------------------------------------------------------------

TINY = dict(V=16, L=1, H=2, C=4, F=4, w=4, attn=0, neg=1, pos=1, rope=1, theta=10000, T=8)


def param_count(c):
    V, L, C, F = c["V"], c["L"], c["C"], c["F"]
    return V * C + L * C + 4 * L * C * C + L * C + 3 * L * F * C + C + V * C


CRC_OFFSET = 4 * 17  # header[17]: the CRC-32 of the file with these 4 bytes set to 0


def file_crc(data):
    """The CRC of spec section 3: zlib.crc32 of the whole file with field 17 read as 0."""
    return zlib.crc32(data[CRC_OFFSET + 4:], zlib.crc32(b"\0\0\0\0", zlib.crc32(data[:CRC_OFFSET])))


def fix_crc(data):
    """data with header[17] set to its CRC (the file as it is: any length >= the 17 fields)."""
    if len(data) < CRC_OFFSET + 4:
        return data
    return data[:CRC_OFFSET] + struct.pack("<I", file_crc(data)) + data[CRC_OFFSET + 4:]


def xor_byte(data, pos, x=0x01):
    """data with the byte at pos XORed with x (after the CRC was written: a corruption)."""
    return data[:pos] + bytes([data[pos] ^ x]) + data[pos + 1:]


def header(c, step=1, state=1, version=2, bos=-1):
    h = [0] * 256
    h[0], h[1] = CKPT_MAGIC, version
    h[2:14] = [c["V"], c["L"], c["H"], c["C"], c["F"], c["w"], c["attn"], c["neg"], c["pos"],
               c["rope"], c["theta"], c["T"]]
    h[14], h[15] = step, state
    if version != 1:
        h[16] = bos
    return h


def params(c):
    """Small deterministic weights; the norm gains (attn_norm, mlp_norm, final_norm) are 1."""
    V, L, C, F = c["V"], c["L"], c["C"], c["F"]
    sizes = [V * C, L * C, L * C * C, L * C * C, L * C * C, L * C * C, L * C, L * F * C, L * F * C,
             L * C * F, C, V * C]
    out = []
    k = 0
    for t, n in enumerate(sizes):
        for _ in range(n):
            out.append(1.0 if t in (1, 6, 10) else ((k * 37) % 23 - 11) * 0.01)
            k += 1
    return out


STATE_INTS = dict(magic=STATE_MAGIC, steps=3, warmup=0, B=2, T=8, seed=1, shuffle=0, cursor=0,
                  epoch=0, sample_rng=12345)
STATE_DBL = dict(lr=1e-3, min_lr_ratio=0.1, beta1=0.9, beta2=0.95, eps=1e-8, wd=0.1, clip=1.0)


def ckpt_bytes(c=TINY, step=1, state=1, hdr=None, p=None, m=None, v=None, ints=None, dbl=None, version=2,
               bos=-1, crc=True):
    """A checkpoint. version 2 (default) gets its CRC in field 17 unless crc=False or hdr sets
    field 17 itself; hdr overrides header fields (after the version and bos are filled in)."""
    P = param_count(c)
    h = header(c, step, state, version, bos)
    if hdr:
        for i, val in hdr.items():
            h[i] = val
    p = params(c) if p is None else p
    out = struct.pack("<256i", *h) + struct.pack("<%df" % len(p), *p)
    if state:
        m = [0.001 * ((i % 7) - 3) for i in range(P)] if m is None else m
        v = [1e-6 * (1 + i % 5) for i in range(P)] if v is None else v
        si = dict(STATE_INTS, **(ints or {}))
        sd = dict(STATE_DBL, **(dbl or {}))
        iv = [si[k] for k in ("magic", "steps", "warmup", "B", "T", "seed", "shuffle", "cursor",
                              "epoch", "sample_rng")] + [0] * 6
        dv = [sd[k] for k in ("lr", "min_lr_ratio", "beta1", "beta2", "eps", "wd", "clip")] + [0.0] * 9
        out += struct.pack("<%df" % P, *m) + struct.pack("<%df" % P, *v)
        out += struct.pack("<16q", *iv) + struct.pack("<16d", *dv)
    if version == 2 and crc and not (hdr and 17 in hdr):
        out = fix_crc(out)
    return out


def with_param(index, value):
    p = params(TINY)
    p[index] = value
    return p


def moments(index, value):
    P = param_count(TINY)
    return [0.0] * index + [value] + [0.0] * (P - index - 1)


# ---- the corpus ---------------------------------------------------------------------------

OK16 = [(i * 7 + i // 16) % 16 for i in range(200)]  # the resume/eval helper shard (n = 200)


def cases():
    """(file name, mode, expected substring, bytes)"""
    good256 = text_tokens(600, 7)
    P = param_count(TINY)
    c = []

    def add(name, mode, expect, data):
        c.append((name, mode, expect, data))

    # token shards, fed as --train (V = 256, batch 2 x seq 8)
    add("shard_empty.bin", "train", "token shard is empty", b"")
    add("shard_header_truncated.bin", "train", "truncated", shard_bytes(good256)[:100])
    add("shard_header_1023_bytes.bin", "train", "truncated", shard_bytes(good256)[:1023])
    add("shard_bad_magic.bin", "train", "not a token shard", shard_bytes(good256, magic=20240521))
    add("shard_text_file.bin", "train", "not a token shard", bytes(good256) * 2)
    add("shard_bad_version.bin", "train", "unsupported token shard version", shard_bytes(good256, version=2))
    add("shard_negative_count.bin", "train", "negative token count", shard_bytes(good256, count=-5))
    add("shard_count_too_big.bin", "train", "header promises", shard_bytes(good256, count=601))
    add("shard_count_too_small.bin", "train", "header promises", shard_bytes(good256, count=599))
    add("shard_count_huge.bin", "train", "header promises", shard_bytes(good256, count=2**31 - 1))
    add("shard_odd_size.bin", "train", "header promises", shard_bytes(good256) + b"\x00")
    add("shard_zero_tokens.bin", "train", "at least 2", shard_bytes([]))
    add("shard_one_token.bin", "train", "at least 2", shard_bytes([65]))
    add("shard_token_256.bin", "train", "not below the vocabulary size", shard_bytes(good256[:5] + [256] + good256[6:]))
    add("shard_token_65535_last.bin", "train", "not below the vocabulary size", shard_bytes(good256[:-1] + [65535]))
    add("shard_too_short_for_batch.bin", "train", "too few for a batch", shard_bytes(good256[:16]))
    add("shard_is_a_checkpoint.bin", "train", "not a token shard", ckpt_bytes(state=0))
    # as --val
    add("val_token_300.bin", "val", "not below the vocabulary size", shard_bytes([300] + good256[1:100]))
    add("val_too_short.bin", "val", "too few for one validation chunk", shard_bytes(good256[:5]))
    add("val_truncated.bin", "val", "header promises", shard_bytes(good256[:100])[:-1])
    # as --eval, with a V = 16 model
    add("eval_token_16.bin", "eval", "not below the vocabulary size", shard_bytes(OK16[:50] + [16] + OK16[51:]))
    add("eval_too_short.bin", "eval", "fewer than eval length", shard_bytes(OK16[:5]))
    add("eval_bad_magic.bin", "eval", "not a token shard", shard_bytes(OK16, magic=0))

    # checkpoints, fed as --init (then --eval). Version 2 with a correct CRC (of the file as
    # it is, also when it is cut short or too long), so each reaches the check it is named for
    full = ckpt_bytes(state=0)
    add("ckpt_empty.ckpt", "init", "checkpoint is empty", b"")
    add("ckpt_header_truncated.ckpt", "init", "truncated", full[:512])
    add("ckpt_header_1020_bytes.ckpt", "init", "truncated", full[:1020])
    add("ckpt_bad_magic.ckpt", "init", "bad magic", ckpt_bytes(state=0, hdr={0: 0x54415754}))
    add("ckpt_is_a_shard.ckpt", "init", "bad magic", shard_bytes(OK16))
    add("ckpt_bad_version.ckpt", "init", "unsupported checkpoint version", ckpt_bytes(state=0, hdr={1: 0x7fffffff}))
    add("ckpt_version_0.ckpt", "init", "unsupported checkpoint version", ckpt_bytes(state=0, hdr={1: 0}))
    add("ckpt_version_3.ckpt", "init", "unsupported checkpoint version", ckpt_bytes(state=0, hdr={1: 3}))
    add("ckpt_version_negative.ckpt", "init", "unsupported checkpoint version", ckpt_bytes(state=0, hdr={1: -2}))
    add("ckpt_vocab_0.ckpt", "init", "vocabulary size", ckpt_bytes(state=0, hdr={2: 0}))
    add("ckpt_vocab_70000.ckpt", "init", "vocabulary size", ckpt_bytes(state=0, hdr={2: 70000}))
    add("ckpt_layers_0.ckpt", "init", "layers must be", ckpt_bytes(state=0, hdr={3: 0}))
    add("ckpt_layers_negative.ckpt", "init", "layers must be", ckpt_bytes(state=0, hdr={3: -1}))
    add("ckpt_heads_0.ckpt", "init", "heads must be", ckpt_bytes(state=0, hdr={4: 0}))
    add("ckpt_dim_negative.ckpt", "init", "model width", ckpt_bytes(state=0, hdr={5: -4}))
    add("ckpt_C_not_divisible_by_H.ckpt", "init", "divisible", ckpt_bytes(state=0, hdr={4: 3}))
    add("ckpt_odd_head_width_rope.ckpt", "init", "even head width", ckpt_bytes(state=0, hdr={4: 4}))
    add("ckpt_ffn_0.ckpt", "init", "ffn width", ckpt_bytes(state=0, hdr={6: 0}))
    add("ckpt_window_0.ckpt", "init", "window must be", ckpt_bytes(state=0, hdr={7: 0}))
    add("ckpt_window_negative.ckpt", "init", "window must be", ckpt_bytes(state=0, hdr={7: -2147483648}))
    add("ckpt_attn_2.ckpt", "init", "attention must be", ckpt_bytes(state=0, hdr={8: 2}))
    add("ckpt_alibi_more_than_heads.ckpt", "init", "ALiBi", ckpt_bytes(state=0, hdr={9: 2, 10: 1}))
    add("ckpt_alibi_negative.ckpt", "init", "ALiBi", ckpt_bytes(state=0, hdr={9: -1, 10: 0}))
    add("ckpt_alibi_overflow.ckpt", "init", "ALiBi", ckpt_bytes(state=0, hdr={9: 2147483647, 10: 2147483647}))
    add("ckpt_rope_2.ckpt", "init", "rope must be", ckpt_bytes(state=0, hdr={11: 2}))
    add("ckpt_theta_0.ckpt", "init", "rope theta", ckpt_bytes(state=0, hdr={12: 0}))
    add("ckpt_seq_negative.ckpt", "init", "sequence length", ckpt_bytes(state=0, hdr={13: -8}))
    add("ckpt_step_negative.ckpt", "init", "negative step count", ckpt_bytes(state=0, hdr={14: -1}))
    add("ckpt_field15_is_2.ckpt", "init", "field 15", ckpt_bytes(state=0, hdr={15: 2}))
    # header[16], the start token: -1 or 0..V-1 (V = 16)
    add("ckpt_bos_16_is_V.ckpt", "init", "start token", ckpt_bytes(state=0, bos=16))
    add("ckpt_bos_minus_2.ckpt", "init", "start token", ckpt_bytes(state=0, bos=-2))
    add("ckpt_bos_int_min.ckpt", "init", "start token", ckpt_bytes(state=0, bos=-2147483648))
    add("ckpt_bos_int_max.ckpt", "init", "start token", ckpt_bytes(state=0, bos=2147483647))
    add("ckpt_reserved_18.ckpt", "init", "reserved field 18", ckpt_bytes(state=0, hdr={18: 1}))
    add("ckpt_reserved_255.ckpt", "init", "reserved field 255", ckpt_bytes(state=0, hdr={255: -1}))
    add("ckpt_short_by_one_float.ckpt", "init", "header implies", fix_crc(full[:-4]))
    add("ckpt_short_by_one_byte.ckpt", "init", "header implies", fix_crc(full[:-1]))
    add("ckpt_extra_byte.ckpt", "init", "header implies", fix_crc(full + b"\x00"))
    add("ckpt_header_only.ckpt", "init", "header implies", fix_crc(full[:1024]))
    add("ckpt_huge_dims.ckpt", "init", "header implies",
        ckpt_bytes(state=0, hdr={2: 65536, 3: 4096, 4: 4096, 5: 65536, 6: 1 << 20, 7: 2147483647}))
    add("ckpt_state_flag_without_state.ckpt", "init", "header implies", ckpt_bytes(state=0, hdr={15: 1}))
    add("ckpt_nan_weight.ckpt", "init", "not finite", ckpt_bytes(state=0, p=with_param(3, float("nan"))))
    add("ckpt_inf_last_weight.ckpt", "init", "not finite", ckpt_bytes(state=0, p=with_param(P - 1, float("-inf"))))
    add("ckpt_nan_norm_gain.ckpt", "init", "not finite", ckpt_bytes(state=0, p=with_param(64, float("nan"))))

    # the CRC (header[17]): any change after the CRC was written, wherever it is, and before
    # any other check is trusted (a defect that a later check would catch is reported as the
    # checksum mismatch, because the CRC comes first)
    crc = "checksum mismatch: the file is corrupt or was modified"
    state_full = ckpt_bytes()
    S = 1024 + 4 * P           # where the moments start (m, then v, then the trainer state)
    add("crc_weight_byte_flipped.ckpt", "init", crc, xor_byte(full, 1024 + 4 * 100 + 2, 0x10))
    add("crc_last_byte_flipped.ckpt", "init", crc, xor_byte(full, len(full) - 1, 0x80))
    add("crc_step_count_changed.ckpt", "init", crc, xor_byte(full, 4 * 14, 0x02))   # step 1 -> 3
    add("crc_seq_len_changed.ckpt", "init", crc, xor_byte(full, 4 * 13, 0x18))      # T 8 -> 16
    add("crc_bos_changed.ckpt", "init", crc, full[:64] + struct.pack("<i", 3) + full[68:])  # -1 -> 3
    add("crc_field_flipped.ckpt", "init", crc, xor_byte(full, CRC_OFFSET + 1, 0x01))
    add("crc_field_zero.ckpt", "init", crc, ckpt_bytes(state=0, hdr={17: 0}))
    add("crc_reserved_changed.ckpt", "init", crc, xor_byte(full, 4 * 200, 0x01))
    add("crc_stale_after_truncation.ckpt", "init", crc, full[:-4])
    add("crc_stale_bad_layers.ckpt", "init", crc, ckpt_bytes(state=0, hdr={3: 0}, crc=False))
    add("crc_stale_nan_weight.ckpt", "init", crc, full[:1024 + 12] + struct.pack("<f", float("nan")) + full[1024 + 16:])
    add("crc_moment_m_flipped.ckpt", "resume", crc, xor_byte(state_full, S + 4 * 10 + 3, 0x01))
    add("crc_moment_v_flipped.ckpt", "resume", crc, xor_byte(state_full, S + 4 * P + 4 * 10, 0x40))
    add("crc_state_cursor_changed.ckpt", "resume", crc, xor_byte(state_full, S + 8 * P + 8 * 7, 0x08))
    add("crc_state_lr_changed.ckpt", "resume", crc, xor_byte(state_full, S + 8 * P + 8 * 16 + 6, 0x01))
    add("crc_state_step_changed.ckpt", "resume", crc, xor_byte(state_full, 4 * 14, 0x01))  # step 1 -> 0

    # version 1: no start token, no checksum; fields 16 and 17 must be 0, the other checks stay
    v1 = ckpt_bytes(state=0, version=1)
    add("v1_field16_nonzero.ckpt", "init", "fields 16 and 17", ckpt_bytes(state=0, version=1, hdr={16: 1}))
    add("v1_field16_minus_1.ckpt", "init", "fields 16 and 17", ckpt_bytes(state=0, version=1, hdr={16: -1}))
    add("v1_field17_nonzero.ckpt", "init", "fields 16 and 17", ckpt_bytes(state=0, version=1, hdr={17: 0x12345678}))
    add("v1_field17_is_its_crc.ckpt", "init", "fields 16 and 17", fix_crc(v1))
    add("v1_reserved_18.ckpt", "init", "reserved field 18", ckpt_bytes(state=0, version=1, hdr={18: 7}))
    add("v1_layers_0.ckpt", "init", "layers must be", ckpt_bytes(state=0, version=1, hdr={3: 0}))
    add("v1_short_by_one_float.ckpt", "init", "header implies", v1[:-4])
    add("v1_nan_weight.ckpt", "init", "not finite", ckpt_bytes(state=0, version=1, p=with_param(3, float("nan"))))
    add("v1_state_nan_moment_m.ckpt", "resume", "AdamW moment", ckpt_bytes(version=1, m=moments(7, float("nan"))))

    # checkpoints with trainer state, fed as --resume (train shard ok_shard16.bin, n = 200)
    add("ckpt_no_state_resume.ckpt", "resume", "no optimizer state", ckpt_bytes(state=0))
    add("state_bad_magic.ckpt", "resume", "bad magic", ckpt_bytes(ints={"magic": 0x4E55525454415754}))
    add("state_zero_magic.ckpt", "resume", "trainer state is corrupt", ckpt_bytes(ints={"magic": 0}))
    add("state_nan_moment_m.ckpt", "resume", "AdamW moment", ckpt_bytes(m=moments(7, float("nan"))))
    add("state_negative_moment_v.ckpt", "resume", "AdamW moment",
        ckpt_bytes(v=[1e-6] * 10 + [-1e-6] + [1e-6] * (P - 11)))
    add("state_inf_moment_v.ckpt", "resume", "AdamW moment", ckpt_bytes(v=moments(P - 1, float("inf"))))
    add("state_nan_weight.ckpt", "resume", "not finite", ckpt_bytes(p=with_param(0, float("nan"))))
    add("state_batch_0.ckpt", "resume", "out of range", ckpt_bytes(ints={"B": 0}))
    add("state_batch_2p40.ckpt", "resume", "out of range", ckpt_bytes(ints={"B": 1 << 40}))
    add("state_seq_0.ckpt", "resume", "out of range", ckpt_bytes(ints={"T": 0}))
    add("state_steps_negative.ckpt", "resume", "out of range", ckpt_bytes(ints={"steps": -1}))
    add("state_warmup_negative.ckpt", "resume", "out of range", ckpt_bytes(ints={"warmup": -3}))
    add("state_shuffle_2.ckpt", "resume", "out of range", ckpt_bytes(ints={"shuffle": 2}))
    add("state_cursor_negative.ckpt", "resume", "out of range", ckpt_bytes(ints={"cursor": -1}))
    add("state_epoch_negative.ckpt", "resume", "out of range", ckpt_bytes(ints={"epoch": -1}))
    add("state_lr_nan.ckpt", "resume", "hyperparameter", ckpt_bytes(dbl={"lr": float("nan")}))
    add("state_lr_negative.ckpt", "resume", "hyperparameter", ckpt_bytes(dbl={"lr": -1e-3}))
    add("state_clip_inf.ckpt", "resume", "hyperparameter", ckpt_bytes(dbl={"clip": float("inf")}))
    add("state_wd_negative.ckpt", "resume", "hyperparameter", ckpt_bytes(dbl={"wd": -0.1}))
    # the same ranges as the command-line flags (beta < 1, eps > 0, min_lr_ratio <= 1, lr <= 1e3)
    add("state_beta1_is_1.ckpt", "resume", "hyperparameter", ckpt_bytes(dbl={"beta1": 1.0}))
    add("state_beta2_is_2.ckpt", "resume", "hyperparameter", ckpt_bytes(dbl={"beta2": 2.0}))
    add("state_eps_0.ckpt", "resume", "hyperparameter", ckpt_bytes(dbl={"eps": 0.0}))
    add("state_min_lr_ratio_5.ckpt", "resume", "hyperparameter", ckpt_bytes(dbl={"min_lr_ratio": 5.0}))
    add("state_lr_1e30.ckpt", "resume", "hyperparameter", ckpt_bytes(dbl={"lr": 1e30}))
    add("state_warmup_longer_than_run.ckpt", "resume", "warmup", ckpt_bytes(ints={"warmup": 10}))
    add("state_run_complete.ckpt", "resume", "run is complete", ckpt_bytes(step=3))
    add("state_cursor_past_end.ckpt", "resume", "outside the training shard", ckpt_bytes(ints={"cursor": 100000}))
    # a cursor inside the shard but too close to its end for one batch (B*T+1 = 17 tokens);
    # shuffled, 199 // 8 = 24 sequences: cursor 24 (the end of an epoch) is valid, 25 is not
    add("state_cursor_near_end.ckpt", "resume", "outside the training shard", ckpt_bytes(ints={"cursor": 195}))
    add("state_cursor_shuffled_past_end.ckpt", "resume", "outside the training shard",
        ckpt_bytes(ints={"shuffle": 1, "cursor": 25}))
    add("state_batch_too_big_for_shard.ckpt", "resume", "too few for a batch", ckpt_bytes(ints={"B": 100}))
    add("state_huge_batch.ckpt", "resume", "GB of activations", ckpt_bytes(ints={"B": 1 << 30, "T": 1 << 30}))
    return c


def valid_files():
    return [
        ("ok_shard16.bin", shard_bytes(OK16)),
        ("ok_shard256.bin", shard_bytes(text_tokens(600, 7))),
        ("ok_ckpt.ckpt", ckpt_bytes(state=0)),
        ("ok_ckpt_state.ckpt", ckpt_bytes()),
        ("ok_ckpt_bos.ckpt", ckpt_bytes(state=0, bos=15)),
        ("ok_ckpt_state_bos.ckpt", ckpt_bytes(bos=0)),
        ("ok_ckpt_v1.ckpt", ckpt_bytes(state=0, version=1)),
        ("ok_ckpt_state_v1.ckpt", ckpt_bytes(version=1)),
        ("train.bin", shard_bytes(text_tokens(20000, 1))),
        ("small.bin", shard_bytes(text_tokens(1200, 2))),
        ("val.bin", shard_bytes(text_tokens(3000, 3))),
    ]


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    bad_dir, valid_dir = os.path.join(here, "bad"), None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--valid":
            valid_dir = args.pop(0)
        else:
            bad_dir = a
    os.makedirs(bad_dir, exist_ok=True)
    lines = ["# FILE<TAB>MODE<TAB>SUBSTRING: generated by tests/make_bad_files.py; see its docstring"]
    for name, mode, expect, data in cases():
        write(os.path.join(bad_dir, name), data)
        lines.append("%s\t%s\t%s" % (name, mode, expect))
    write(os.path.join(bad_dir, "EXPECTED"), ("\n".join(lines) + "\n").encode())
    if valid_dir:
        os.makedirs(valid_dir, exist_ok=True)
        for name, data in valid_files():
            write(os.path.join(valid_dir, name), data)


if __name__ == "__main__":
    main(sys.argv[1:])
