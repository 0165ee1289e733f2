"""
Reference PyTorch implementation of SWAT (Sliding Window Attention Training, Fu et al. 2025)
for the C trainer train_swat.c, and its trainer on GPUs. It follows doc/SPEC.md exactly: same
model, checkpoint format, token shards, batch order, AdamW, LR schedule, clipping and evaluation.
It also writes the debug states that test_swat.c checks the C code against (--write-states).
Checkpoints: writes version 2 (official ALiBi slopes 2^(-8k/H), start token, CRC-32 in
header[17]); reads versions 1 (slopes 2^-k, no start token, no CRC) and 2. A model loaded
from a version 1 file keeps its meaning: it is saved as version 1 again.

Training takes train_swat's defaults, initialisation and data order, so that the same command
line trains the same model in both, and writes the same files: OUTDIR/log.txt and a resumable
OUTDIR/model.ckpt (AdamW moments and trainer state), which train_swat --resume continues and
the other way round. Data parallel under torchrun (NCCL on CUDA, gloo on the CPU): rank r of R
takes sequences r*B/R .. (r+1)*B/R - 1 of each batch, as train_swat_mpi does (doc/gpu.md).

Run with a Python that has torch (Debian: /usr/bin/python3 with python3-torch), e.g.
  /usr/bin/python3 dev/train_swat.py --write-states dev/states
  /usr/bin/python3 dev/train_swat.py --train train.bin --val val.bin --out out/torch
  torchrun --standalone --nproc_per_node 8 dev/train_swat.py --device cuda --train train.bin \
      --out out/gpu
  /usr/bin/python3 dev/train_swat.py --init model.ckpt --eval val.bin --eval-len 1024 --eval-window 128
"""
import argparse, contextlib, glob, io, math, os, resource, shutil, struct, sys, tempfile, time, zlib
from dataclasses import dataclass
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

CKPT_MAGIC, CKPT_VERSION = 0x54415753, 2     # bytes "SWAT"; version 2 is written, 1 and 2 are read
CKPT_CRC_OFFSET = 17 * 4                     # header[17]: CRC-32 (zlib) of the file with this field 0
CRC_MISMATCH = "checksum mismatch: the file is corrupt or was modified"
STATE_MAGIC, STATE_VERSION = 0x44574153, 1   # debug state; on disk the bytes "SAWD" (see README)
SHARD_MAGIC, SHARD_VERSION = 20240520, 1
HEADER_BYTES = 256 * 4
# checkpoint parameter order; the norm gains get no weight decay
PARAM_NAMES = ["wte", "attn_norm", "wq", "wk", "wv", "wo", "mlp_norm",
               "w_gate", "w_up", "w_down", "final_norm", "lm_head"]
NO_DECAY = {"attn_norm", "mlp_norm", "final_norm"}
# the trainer-state tail of a resumable checkpoint (spec section 12.2): 16 int64, 16 float64
TRAINER_STATE_MAGIC = 0x4E55525454415753       # the bytes "SWATTRUN"
TRAINER_STATE_INTS, TRAINER_STATE_DOUBLES = 16, 16
# train_swat's seeds: param_init, loader_shuffle and the sample generator start from these
INIT_SALT, SHUFFLE_MULT, SAMPLE_SALT = 0x5357415453574154, 0x2545F4914F6CDD1D, 0x73616D706C65


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


@dataclass
class Config:   # the defaults are train_swat's
    V: int = 256; L: int = 4; H: int = 8; C: int = 256; F: int = 704
    w: int = 64                  # attention window (keys m-w+1..m)
    softmax: bool = False        # False = SWAT sigmoid attention
    neg: int = 2; pos: int = 2   # balanced ALiBi NEG:POS
    rope: bool = True
    theta: int = 10000
    version: int = CKPT_VERSION  # checkpoint version = the ALiBi slope rule (1: 2^-k, 2: 2^(-8k/H))
    bos: int = -1                # start token id, -1 = none (version 1 never has one)

    def check(self):
        if min(self.V, self.L, self.H, self.C, self.F, self.w) < 1: die("model sizes and window must be >= 1")
        if self.version not in (1, 2): die(f"unknown checkpoint version {self.version}")
        if self.version == 1 and self.bos != -1: die("a version 1 model has no start token")
        if not -1 <= self.bos < self.V: die(f"start token {self.bos} is not below the vocabulary size {self.V} (or -1 for none)")
        if self.C % self.H: die(f"dim {self.C} is not a multiple of heads {self.H}")
        if self.rope and (self.C // self.H) % 2: die("RoPE needs an even head width")
        if self.neg < 0 or self.pos < 0 or self.neg + self.pos > self.H: die("ALiBi NEG:POS must satisfy NEG+POS <= heads")
        if self.theta < 1: die("rope theta must be >= 1")


def param_shapes(c):
    V, L, C, Fh = c.V, c.L, c.C, c.F
    return {"wte": (V, C), "attn_norm": (L, C), "wq": (L, C, C), "wk": (L, C, C), "wv": (L, C, C),
            "wo": (L, C, C), "mlp_norm": (L, C), "w_gate": (L, Fh, C), "w_up": (L, Fh, C),
            "w_down": (L, C, Fh), "final_norm": (C,), "lm_head": (V, C)}


def num_params(c):
    return sum(math.prod(s) for s in param_shapes(c).values())


def init_params(c, gen, std=0.02, gain_std=0.0):
    """float32 init drawn in checkpoint order from `gen`: matrices N(0, std^2), gains 1 + N(0, gain_std^2)."""
    p = {}
    for name, shape in param_shapes(c).items():
        r = torch.randn(shape, generator=gen, dtype=torch.float32)
        p[name] = 1.0 + gain_std * r if name in NO_DECAY else std * r
    return p


def splitmix64(state, n):
    """train_swat's rng_next n times from `state` (a uint64 as a Python int): -> (the n values as
    a uint64 array, the new state). splitmix64's k-th value only needs state + k * golden."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    z = np.uint64(state) + golden * np.arange(1, n + 1, dtype=np.uint64)   # wraps mod 2^64
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31)), (state + n * 0x9E3779B97F4A7C15) % 2 ** 64


def init_params_splitmix(c, seed, chunk=1 << 22):
    """train_swat's param_init: matrices N(0, 0.02^2), the std of wo and w_down divided by
    sqrt(2L), gains 1, from splitmix64 seeded with seed ^ INIT_SALT, each normal by Box-Muller
    in float64 (two uniforms, (x >> 11) * 2^-53) and rounded to float32 once. numpy's log and cos
    stand in for libm's, so a value could differ in its last bit (none does in the tests)."""
    state, p = (seed ^ INIT_SALT) % 2 ** 64, {}
    for name, shape in param_shapes(c).items():
        n = math.prod(shape)
        if name in NO_DECAY:           # the gains draw nothing
            p[name] = torch.ones(shape)
            continue
        std = 0.02 / math.sqrt(2.0 * c.L) if name in ("wo", "w_down") else 0.02
        out = np.empty(n, dtype=np.float32)
        for i in range(0, n, chunk):
            m = min(chunk, n - i)
            bits, state = splitmix64(state, 2 * m)
            u = (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
            normal = np.sqrt(-2.0 * np.log(1.0 - u[0::2])) * np.cos(2.0 * math.pi * u[1::2])
            out[i:i + m] = std * normal
        p[name] = torch.from_numpy(out).view(shape)
    return p


# ----------------------------------------------------------------------------- model

def slope_magnitude(k, H, version):
    """The k-th head (k = 1, 2, ...) of an ALiBi group: 2^-k in version 1 (for every H),
    2^(-8k/H) in version 2 (the official SWAT code and the ALiBi paper; = 2^-k for H = 8)."""
    return 2.0 ** -k if version == 1 else 2.0 ** (-8.0 * k / H)


def alibi_slopes(c):
    # heads 0..NEG-1 negative (favour recent keys), NEG..NEG+POS-1 positive (favour old), rest 0
    s = [0.0] * c.H
    for h in range(c.neg): s[h] = -slope_magnitude(h + 1, c.H, c.version)
    for h in range(c.neg, c.neg + c.pos): s[h] = slope_magnitude(h - c.neg + 1, c.H, c.version)
    return s


def rmsnorm(x, g):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * g


def rope(x, theta):
    # x: (B, H, T, D); rotate interleaved pairs (x[2i], x[2i+1]) at position p by a = p * theta^(-2i/D)
    T, D = x.shape[2], x.shape[3]
    inv = float(theta) ** (-2.0 * torch.arange(D // 2, dtype=torch.float64) / D)
    a = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]        # (T, D/2), float64 angles
    cos, sin = a.cos().to(x.device, x.dtype), a.sin().to(x.device, x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


def swat_attention(q, k, v, w, slopes, softmax, block=256, sinks=None, layer=0):
    """q, k, v: (B, H, T, D). Query m sees keys n with m-w < n <= m; s = q.k/sqrt(D) + slope_h*(m-n).
    Sigmoid mode: a = sigmoid(s), unnormalised. Softmax mode: softmax over the window.
    Plain masked attention, done per block of queries: queries [s0, s1) only need keys
    [s0-w+1, s1), so time and memory are O(T*(block+w)) instead of O(T^2) (long sequences).
    sinks (a SinkStats) adds where this layer's attention goes to it."""
    B, H, T, D = q.shape
    # under bfloat16 autocast the bias stays float32: bfloat16 holds distances exactly only to 256
    bias_dtype = torch.float32 if q.dtype == torch.bfloat16 else q.dtype
    slope = torch.tensor(slopes, dtype=bias_dtype, device=q.device).view(1, H, 1, 1)
    out = []
    for s0 in range(0, T, block):
        s1, k0 = min(T, s0 + block), max(0, s0 - w + 1)
        distance = (torch.arange(s0, s1, device=q.device)[:, None]
                    - torch.arange(k0, s1, device=q.device)[None, :])            # m - n
        outside = (distance < 0) | (distance >= w)
        s = (q[:, :, s0:s1] @ k[:, :, k0:s1].transpose(-1, -2) / math.sqrt(D)
             + slope * distance.to(bias_dtype))
        if softmax:
            a = s.masked_fill(outside, float("-inf")).softmax(-1)
        else:
            a = torch.sigmoid(s).masked_fill(outside, 0.0)
        if sinks is not None and k0 == 0:
            sinks.add(layer, a, s0, min(T, w))
        out.append(a @ v[:, :, k0:s1])
    return torch.cat(out, dim=2)


class SinkStats:
    """train_swat's attention-sink diagnostic of a validation, per layer and head: over the
    queries at positions 1 .. reach-1 of each chunk (reach = min(E, window), the queries that see
    position 0), the sums of a(m, 0), of the row sum, and of the share a(m, 0) / row sum."""
    THRESHOLD, MIN_ROW_SUM = 0.3, 0.05     # a sink head: mean share above 0.3, and not switched off

    def __init__(self, c, device):
        zeros = lambda: torch.zeros(c.L, c.H, dtype=torch.float64, device=device)
        self.first, self.row_sum, self.share = zeros(), zeros(), zeros()
        self.queries = 0

    def add(self, layer, a, s0, reach):
        """a: (B, H, rows, keys) the weights of queries s0.. over keys 0.. (a block with key 0)"""
        lo, hi = max(s0, 1), min(s0 + a.shape[2], reach)
        if hi <= lo: return
        rows = a[:, :, lo - s0:hi - s0].double()
        first, total = rows[..., 0], rows.sum(-1)
        share = torch.where(total > 0, first / total, torch.zeros_like(total))
        self.first[layer] += first.sum((0, 2))
        self.row_sum[layer] += total.sum((0, 2))
        self.share[layer] += share.sum((0, 2))

    def log_line(self, step):
        """The log's line "sink STEP HEADS M s_0 .. s_(M-1)" (spec section 12.4)"""
        n = max(1, self.queries)
        share, row_sum = (self.share / n).flatten().tolist(), (self.row_sum / n).flatten().tolist()
        heads = sum(s > self.THRESHOLD and r >= self.MIN_ROW_SUM for s, r in zip(share, row_sum))
        return f"sink {step} {heads} {len(share)} " + " ".join(f"{s:.4f}" for s in share)


def forward(p, c, idx, window=None, block=256, sinks=None):
    """idx: (B, T) int64 -> logits (B, T, V). `window` overrides c.w (evaluation)."""
    B, T = idx.shape
    H, D = c.H, c.C // c.H
    w = c.w if window is None else window
    slopes = alibi_slopes(c)
    heads = lambda t: t.view(B, T, H, D).transpose(1, 2)               # (B, H, T, D)
    x = p["wte"][idx]
    for l in range(c.L):
        h = rmsnorm(x, p["attn_norm"][l])
        q, k, v = heads(h @ p["wq"][l].T), heads(h @ p["wk"][l].T), heads(h @ p["wv"][l].T)
        if c.rope:
            q, k = rope(q, c.theta), rope(k, c.theta)
        o = swat_attention(q, k, v, w, slopes, c.softmax, block, sinks, l)
        o = o.transpose(1, 2).reshape(B, T, c.C)
        x = x + o @ p["wo"][l].T
        h = rmsnorm(x, p["mlp_norm"][l])
        x = x + (F.silu(h @ p["w_gate"][l].T) * (h @ p["w_up"][l].T)) @ p["w_down"][l].T
    return rmsnorm(x, p["final_norm"]) @ p["lm_head"].T


def loss_fn(logits, targets, reduction="mean"):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction=reduction)


class SWAT(torch.nn.Module):
    """The parameters as one module, so that DistributedDataParallel can wrap them; its forward
    is `forward` and `loss_fn`, and returns the loss. With bf16, autocast runs the matrix
    products and the attention in bfloat16; weights, residual stream and loss stay float32."""
    def __init__(self, c, p, block=256, bf16=False):
        super().__init__()
        self.c, self.block, self.bf16 = c, block, bf16
        for name in PARAM_NAMES:
            self.register_parameter(name, torch.nn.Parameter(p[name]))

    def params(self):
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def forward(self, x, y, window=None, reduction="mean", sinks=None):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = forward(self.params(), self.c, x, window, self.block, sinks)
        return loss_fn(logits.float() if self.bf16 else logits, y, reduction)


# ----------------------------------------------------------------------------- files

def checkpoint_crc(data):
    """CRC-32 (zlib) of a whole checkpoint's bytes, computed with header[17] taken as 0."""
    crc = zlib.crc32(data[:CKPT_CRC_OFFSET])
    crc = zlib.crc32(b"\0\0\0\0", crc)
    return zlib.crc32(data[CKPT_CRC_OFFSET + 4:], crc)


def f32_bytes(t):
    return t.detach().to("cpu", torch.float32).numpy().astype("<f4").tobytes()


def checkpoint_write(f, c, p, T, steps, state=None):
    """Writes a checkpoint of version c.version to the seekable file f, tensor by tensor:
    version 2 stores the start token in header[16] and the CRC in header[17] (its uint32 bit
    pattern, of the file with that field 0); version 1 has 0 in both. With state (a dict of
    the AdamW moments "m", "v", tensors in PARAM_NAMES order, and the trainer state's "ints"
    and "doubles"), header[15] = 1 and they follow the parameters (spec sections 8.2, 12.2)."""
    hdr = np.zeros(256, dtype="<i4")
    hdr[:17] = [CKPT_MAGIC, c.version, c.V, c.L, c.H, c.C, c.F, c.w, int(c.softmax), c.neg, c.pos,
                int(c.rope), c.theta, T, steps, int(state is not None),
                c.bos if c.version >= 2 else 0]
    crc = 0
    def put(b):
        nonlocal crc
        crc = zlib.crc32(b, crc)
        f.write(b)
    put(hdr.tobytes())
    for name in PARAM_NAMES:
        put(f32_bytes(p[name]))
    if state is not None:
        for t in state["m"] + state["v"]:
            put(f32_bytes(t))
        put(np.array(state["ints"], dtype="<i8").tobytes())
        put(np.array(state["doubles"], dtype="<f8").tobytes())
    if c.version >= 2:
        f.seek(CKPT_CRC_OFFSET)
        f.write(struct.pack("<I", crc))
        f.seek(0, io.SEEK_END)


def checkpoint_bytes(c, p, T, steps, state=None):
    buf = io.BytesIO()
    checkpoint_write(buf, c, p, T, steps, state)
    return buf.getvalue()


def write_checkpoint(path, c, p, T, steps, state=None):
    """As train_swat's checkpoint_save: PATH.tmp, flushed and synced, renamed over PATH."""
    with open(path + ".tmp", "wb") as f:
        checkpoint_write(f, c, p, T, steps, state)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def read_with_header(path, kind, what, magic, versions, header_only=False):
    """-> (file bytes, int32 header of 256) after checking the magic and the version;
    header_only: only the header's bytes are read."""
    try:
        with open(path, "rb") as f:
            data = f.read(HEADER_BYTES if header_only else -1)
    except OSError as e:
        die(f"cannot read {kind} {path}: {e.strerror}")
    if len(data) < HEADER_BYTES: die(f"{path}: too small for a {kind} header")
    hdr = np.frombuffer(data[:HEADER_BYTES], dtype="<i4")
    if hdr[0] != magic: die(f"{path}: bad magic (not {what})")
    if hdr[1] not in versions: die(f"{path}: unsupported {kind} version {hdr[1]}")
    return data, hdr


def read_checkpoint(path, with_state=False):
    """-> (Config, dict of float32 params, header), and with_state the optimizer state too (see
    read_state; None without one). Otherwise an optimizer/trainer tail (header[15]=1) is skipped.
    Version 2: the CRC in header[17] is checked before any field beyond magic and version is used.
    Version 1: header[16] and [17] must be 0; the model gets the version 1 slopes and no start token."""
    data, hdr = read_with_header(path, "checkpoint", "a SWAT checkpoint", CKPT_MAGIC, (1, 2))
    version = int(hdr[1])
    if version >= 2:
        stored = struct.unpack_from("<I", data, CKPT_CRC_OFFSET)[0]
        if checkpoint_crc(data) != stored: die(f"{path}: {CRC_MISMATCH}")
    elif hdr[16] != 0 or hdr[17] != 0:
        die(f"{path}: corrupt header (a version 1 file has 0 in header[16] and header[17])")
    if hdr[8] not in (0, 1) or hdr[11] not in (0, 1) or hdr[15] not in (0, 1): die(f"{path}: corrupt header")
    c = Config(V=int(hdr[2]), L=int(hdr[3]), H=int(hdr[4]), C=int(hdr[5]), F=int(hdr[6]), w=int(hdr[7]),
               softmax=bool(hdr[8]), neg=int(hdr[9]), pos=int(hdr[10]), rope=bool(hdr[11]), theta=int(hdr[12]),
               version=version, bos=int(hdr[16]) if version >= 2 else -1)
    c.check()
    P = num_params(c)
    need = HEADER_BYTES + 4 * P
    if len(data) < need or (hdr[15] == 0 and len(data) != need):
        die(f"{path}: file size {len(data)} does not match the header (parameters need {need} bytes)")
    flat = torch.from_numpy(np.frombuffer(data, dtype="<f4", count=P, offset=HEADER_BYTES).copy())
    p, off = {}, 0
    for name, shape in param_shapes(c).items():
        n = math.prod(shape)
        p[name] = flat[off:off + n].view(shape).clone()
        off += n
    if with_state:
        return c, p, hdr, read_state(path, data, c) if hdr[15] == 1 else None
    return c, p, hdr


def read_state(path, data, c):
    """The tail of a resumable checkpoint (spec sections 8.2 and 12.2) -> dict: "m", "v" (lists of
    float32 tensors in PARAM_NAMES order), "ints", "doubles" (lists of 16), checked as
    train_swat's read_state checks them."""
    P = num_params(c)
    at = HEADER_BYTES + 4 * P
    need = at + 8 * P + 8 * (TRAINER_STATE_INTS + TRAINER_STATE_DOUBLES)
    if len(data) != need:
        die(f"{path}: file size {len(data)} does not match a checkpoint with optimizer state "
            f"({need} bytes)")
    moments = np.frombuffer(data, dtype="<f4", count=2 * P, offset=at)
    tail = at + 8 * P
    ints = np.frombuffer(data, dtype="<i8", count=TRAINER_STATE_INTS, offset=tail).tolist()
    tail += 8 * TRAINER_STATE_INTS
    doubles = np.frombuffer(data, dtype="<f8", count=TRAINER_STATE_DOUBLES, offset=tail).tolist()
    if ints[0] != TRAINER_STATE_MAGIC: die(f"{path}: trainer state is corrupt (bad magic)")
    if not np.isfinite(moments).all() or (moments[P:] < 0).any():
        die(f"{path}: an AdamW moment is not finite")
    big = 2 ** 31 - 1
    sizes_ok = 0 <= ints[1] <= big and 0 <= ints[2] <= big and 1 <= ints[3] <= big
    sizes_ok = sizes_ok and 1 <= ints[4] <= big
    if not sizes_ok or ints[6] not in (0, 1) or ints[7] < 0 or ints[8] < 0:
        die(f"{path}: trainer state is corrupt (a field is out of range)")
    d = doubles
    if (not all(math.isfinite(x) and x >= 0 for x in d[:7]) or d[0] > 1e3 or d[1] > 1 or d[2] >= 1
            or d[3] >= 1 or not d[4] > 0 or d[5] > 1e3 or d[6] > 1e30):
        die(f"{path}: trainer state is corrupt (a hyperparameter is out of range)")
    m, v, off = [], [], 0
    for name, shape in param_shapes(c).items():
        n = math.prod(shape)
        m.append(torch.from_numpy(moments[off:off + n].copy()).view(shape))
        v.append(torch.from_numpy(moments[P + off:P + off + n].copy()).view(shape))
        off += n
    return {"m": m, "v": v, "ints": ints, "doubles": doubles}


def read_shard(path, V):
    data, hdr = read_with_header(path, "shard", "a token shard", SHARD_MAGIC, (SHARD_VERSION,))
    n = int(hdr[2])
    if n < 0 or len(data) != HEADER_BYTES + 2 * n: die(f"{path}: header says {n} tokens, file size is {len(data)}")
    tok = np.frombuffer(data, dtype="<u2", count=n, offset=HEADER_BYTES)
    if n and int(tok.max()) >= V: die(f"{path}: token {int(tok.max())} >= vocab {V}")
    return torch.from_numpy(tok.astype(np.int64))


def map_shards(pattern, V, chunk=1 << 26):
    """The training tokens as uint16, checked as read_shard checks them: one shard memory-mapped
    (the ranks of a node share its pages; a batch is read when it is needed), or a glob pattern
    of several read in sorted order as one stream, as train_swat reads them (in memory)."""
    paths = sorted(glob.glob(pattern)) if any(ch in pattern for ch in "*?[") else [pattern]
    if not paths: die(f"--train {pattern}: no file matches")
    parts = []
    for path in paths:
        _, hdr = read_with_header(path, "shard", "a token shard", SHARD_MAGIC, (SHARD_VERSION,),
                                  header_only=True)
        n, size = int(hdr[2]), os.path.getsize(path)
        if n < 0 or size != HEADER_BYTES + 2 * n:
            die(f"{path}: header says {n} tokens, file size is {size}")
        tok = np.zeros(0, "<u2")
        if n: tok = np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(n,))
        top = max((int(tok[i:i + chunk].max()) for i in range(0, n, chunk)), default=0)
        if top >= V: die(f"{path}: token {top} >= vocab {V}")
        parts.append(tok)
    if len(parts) == 1: return parts[0]
    print(f"--train {pattern}: {len(parts)} shards, {sum(len(t) for t in parts)} tokens, "
          "read in order as one stream")
    return np.concatenate(parts)


def write_shard(path, tokens):
    hdr = np.zeros(256, dtype="<i4"); hdr[:3] = [SHARD_MAGIC, SHARD_VERSION, len(tokens)]
    with open(path, "wb") as f:
        f.write(hdr.tobytes()); f.write(np.asarray(tokens, dtype="<u2").tobytes())


def sequences(tokens, n, T, bos):
    """n sequences of T from tokens[0:n*T+1] (spec sections 2 and 5). Without a start token,
    sequence i has inputs t[iT .. iT+T) and targets t[iT+1 .. iT+T]; with one (bos >= 0),
    inputs [bos, t[iT] .. t[iT+T-2]] and targets t[iT .. iT+T): every target is data."""
    if bos < 0:
        return tokens[:n * T].view(n, T), tokens[1:n * T + 1].view(n, T)
    y = tokens[:n * T].view(n, T)
    return torch.cat((torch.full((n, 1), bos, dtype=y.dtype), y[:, :-1]), dim=1), y


def sequences_at(tokens, starts, T, bos):
    """The sequences of T that start at tokens[starts] (numpy arrays: the tokens, the positions),
    as `sequences` lays them out: (inputs, targets), int64 tensors (len(starts), T) each."""
    at = starts[:, None] + np.arange(T)
    y = torch.from_numpy(tokens[at + (1 if bos < 0 else 0)].astype(np.int64))
    if bos < 0:
        return torch.from_numpy(tokens[at].astype(np.int64)), y
    return torch.cat((torch.full((len(starts), 1), bos, dtype=y.dtype), y[:, :-1]), dim=1), y


def shuffle_order(num_seqs, seed, epoch):
    """train_swat's loader_shuffle: the epoch's order of the sequences 0 .. num_seqs-1, a
    Fisher-Yates shuffle (i from the end, j = rng % (i+1)) with splitmix64 from
    seed * SHUFFLE_MULT + epoch + 1."""
    order = list(range(num_seqs))
    bits, _ = splitmix64((seed * SHUFFLE_MULT + epoch + 1) % 2 ** 64, max(0, num_seqs - 1))
    picks = (bits % np.arange(num_seqs, 1, -1, dtype=np.uint64)).tolist()   # i + 1 = num_seqs .. 2
    for i, j in zip(range(num_seqs - 1, 0, -1), picks):
        order[i], order[j] = order[j], order[i]
    return np.array(order, dtype=np.int64)


class Loader:
    """Spec section 10: contiguous batches from a cursor at 0; advance by B*T; wrap to 0 when
    fewer than B*T+1 tokens remain after the cursor. The start token changes what a batch
    holds (see sequences), not where batches start. shuffle: train_swat's default order (spec
    section 12.3): the floor((N-1)/T) sequences at multiples of T, each epoch in a fresh order
    (shuffle_order), B at a time, a last partial batch skipped; the cursor `pos` is then an
    index into the order. (pos, epoch) is the whole state, as in a checkpoint. tokens: a tensor
    or a numpy array (map_shards); batches are int64 tensors."""
    def __init__(self, tokens, B, T, what, bos=-1, shuffle=False, seed=0):
        if len(tokens) < B * T + 1: die(f"{what}: {len(tokens)} tokens, need at least B*T+1 = {B * T + 1}")
        tokens = tokens.numpy() if torch.is_tensor(tokens) else tokens
        self.tokens, self.B, self.T, self.bos, self.pos = tokens, B, T, bos, 0
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        if shuffle:
            self.num_seqs = (len(tokens) - 1) // T
            self.order = shuffle_order(self.num_seqs, seed, 0)

    def seek(self, pos, epoch):
        """Restore a position saved in a checkpoint (train_swat's loader_seek)."""
        limit = self.num_seqs + 1 if self.shuffle else len(self.tokens) - self.B * self.T
        if not 0 <= pos < limit or epoch < 0:
            die(f"checkpoint's data position {pos} is outside the training shard")
        self.pos = pos
        if self.shuffle and epoch != self.epoch:
            self.epoch, self.order = epoch, shuffle_order(self.num_seqs, self.seed, epoch)

    def next(self):
        B, T = self.B, self.T
        if self.shuffle:
            if self.pos + B > self.num_seqs:
                self.epoch, self.pos = self.epoch + 1, 0
                self.order = shuffle_order(self.num_seqs, self.seed, self.epoch)
            x, y = sequences_at(self.tokens, self.order[self.pos:self.pos + B] * T, T, self.bos)
            self.pos += B
            return x, y
        span = torch.from_numpy(self.tokens[self.pos:self.pos + B * T + 1].astype(np.int64))
        x, y = sequences(span, B, T, self.bos)
        self.pos += B * T
        if self.pos + B * T + 1 > len(self.tokens): self.pos = 0
        return x, y


# ----------------------------------------------------------------------------- training

def lr_at(s, lr, warmup, steps, min_lr_ratio):
    if s < warmup:
        return lr * (s + 1) / warmup
    progress = (s - warmup) / max(1, steps - warmup)
    min_lr = lr * min_lr_ratio
    # = min_lr + 0.5*(lr - min_lr)*(1 + cos(pi*progress)), written so that progress 0 gives exactly lr
    return lr - 0.5 * (lr - min_lr) * (1.0 - math.cos(math.pi * progress))


def make_optimizer(p, lr, wd, betas=(0.9, 0.95), eps=1e-8, foreach=False):
    """foreach=None lets PyTorch choose (the multi-tensor kernels on a GPU): the same math."""
    decay = [p[n] for n in PARAM_NAMES if n not in NO_DECAY]       # every tensor with >= 2 dims
    no_decay = [p[n] for n in PARAM_NAMES if n in NO_DECAY]        # RMSNorm gains
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps, foreach=foreach)


def adam_moments(opt, plist):
    """-> (first moments, second moments) of AdamW in plist's order, or None before a step."""
    if any("exp_avg" not in opt.state[t] for t in plist): return None
    return [opt.state[t]["exp_avg"] for t in plist], [opt.state[t]["exp_avg_sq"] for t in plist]


def set_adam_moments(opt, plist, m, v, steps):
    """AdamW continues from a checkpoint's moments after `steps` steps (its t counts on)."""
    for t, mt, vt in zip(plist, m, v):
        opt.state[t] = {"step": torch.tensor(float(steps)), "exp_avg": mt.to(t.device, t.dtype),
                        "exp_avg_sq": vt.to(t.device, t.dtype)}


def reference_loss(p, c, block=256):
    """The loss of a batch as a function (x, y) -> mean loss, for train_step with plain tensors."""
    return lambda x, y: loss_fn(forward(p, c, x, block=block), y)


def train_step(loss_of, plist, opt, micro, lr_s, clip, no_sync=None):
    """One step: the gradient of the mean loss over the micro-batches `micro`, a list of K
    (x, y) of equal size (each micro-batch's mean loss / K is backpropagated into the same
    gradients), clip, AdamW at lr_s. Under DistributedDataParallel, `loss_of` is the wrapped
    model and no_sync its no_sync: the first K-1 backward passes only add up, the last one
    also averages the gradients over the ranks. plist: the parameters.
    Returns (the mean loss of these micro-batches, grad norm before clipping, clipping active)."""
    for g in opt.param_groups: g["lr"] = lr_s
    opt.zero_grad(set_to_none=True)
    loss_sum = 0.0
    for i, (x, y) in enumerate(micro):
        last = i == len(micro) - 1
        with (contextlib.nullcontext() if last or no_sync is None else no_sync()):
            loss = loss_of(x, y)
            (loss / len(micro)).backward()
        loss_sum += loss.item()
    if clip > 0:   # grads *= clip/(norm+1e-6) if that is < 1
        norm = torch.nn.utils.clip_grad_norm_(plist, clip).item()
    else:
        norm = torch.norm(torch.stack([t.grad.norm() for t in plist])).item()
    opt.step()
    return loss_sum / len(micro), norm, clip > 0 and clip / (norm + 1e-6) < 1.0


def leaf(p, dtype):
    return {n: t.detach().to(dtype).clone().requires_grad_(True) for n, t in p.items()}


def eval_chunks(tokens, E, max_chunks):
    """Spec section 11: K = min(max_chunks, floor((N-1)/E)) (max_chunks 0: no limit), also with a
    start token."""
    K = (len(tokens) - 1) // E
    return min(K, max_chunks) if max_chunks > 0 else K


def ranks_sum(values, device):
    """The sum over the ranks of a list of float64 (without a process group: the list)."""
    if not (dist.is_available() and dist.is_initialized()): return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


@torch.no_grad()
def evaluate(p, c, tokens, E, W, max_chunks=0, per_forward=0, sinks=None, rank=0, ranks=1):
    """Spec section 11: K chunks of E (see eval_chunks), each on its own (positions 0..E-1) with
    window W; chunk c is t[cE .. cE+E) shifted by one, or with a start token inputs
    [bos, t[cE] .. t[cE+E-2]] and targets t[cE .. cE+E). -> (mean loss over K*E predictions, K).
    p: a dict of tensors, or a SWAT module (its dtype and autocast). per_forward chunks go
    through one forward (0: 2^16 positions' worth); rank r of R takes groups r, r+R, ...
    sinks (a SinkStats) gathers where the attention goes."""
    K = eval_chunks(tokens, E, max_chunks)
    if K < 1: die(f"eval shard has {len(tokens)} tokens, too few for one chunk of {E}")
    x, y = sequences(tokens[:K * E + 1], K, E, c.bos)
    nb = per_forward or max(1, (1 << 16) // E)          # chunks per forward, to bound memory
    device = (p.wte if isinstance(p, SWAT) else p["wte"]).device
    total = 0.0
    for group, i in enumerate(range(0, K, nb)):
        if group % ranks != rank: continue
        xb, yb = x[i:i + nb].to(device), y[i:i + nb].to(device)
        if isinstance(p, SWAT):
            total += p(xb, yb, W, "sum", sinks).item()
        else:
            total += loss_fn(forward(p, c, xb, window=W, sinks=sinks), yb, reduction="sum").item()
    total = ranks_sum([total], device)[0] if ranks > 1 else total
    if sinks is not None:
        sinks.queries = K * max(0, min(E, W) - 1)
        if ranks > 1:
            for t in (sinks.first, sinks.row_sum, sinks.share): dist.all_reduce(t)
    return total / (K * E), K


# ----------------------------------------------------------------------------- debug states

# name, attention softmax?, ALiBi NEG, POS, RoPE, window, clip (None: half the initial grad norm),
# heads H, width C, start token (-1: none). Every checkpoint is version 2 (slopes 2^(-8k/H)).
STATE_CONFIGS = [
    ("swat",                False, 2, 2, True,  7,  None, 4, 32, -1),
    ("vanilla",             True,  0, 0, True,  32, 0.0,  4, 32, -1),
    ("sig_onesided_norope", False, 4, 0, False, 7,  1.0,  4, 32, -1),
    ("softmax_window",      True,  2, 2, True,  5,  1.0,  4, 32, -1),
    ("sig_noalibi_rope",    False, 0, 0, True,  9,  1.0,  4, 32, -1),
    ("swat_w1",             False, 1, 3, True,  1,  1.0,  4, 32, -1),
    ("swat_h6",             False, 3, 3, True,  7,  1.1,  6, 36, -1),   # H = 6: the v1 and v2 slopes differ
    ("swat_bos",            False, 2, 2, True,  7,  1.0,  4, 32, 39),   # start token V-1
]
S_B, S_T, S_STEPS, S_WARMUP = 2, 24, 10, 3
S_LR, S_BETAS, S_EPS, S_WD, S_MINLR = 1e-2, (0.9, 0.95), 1e-8, 0.1, 0.1


def flat_f32(ts):
    return np.concatenate([t.detach().to(torch.float32).reshape(-1).numpy() for t in ts]).astype("<f4")


def write_states(outdir):
    os.makedirs(outdir, exist_ok=True)
    for i, (name, sm, neg, pos, rp, w, clip, H, C, bos) in enumerate(STATE_CONFIGS):
        t0 = time.time()
        c = Config(V=40, L=2, H=H, C=C, F=56, w=w, softmax=sm, neg=neg, pos=pos, rope=rp, theta=10000, bos=bos)
        c.check()
        gen = torch.Generator().manual_seed(1000 + i)
        p32 = init_params(c, gen, std=0.2, gain_std=0.1)   # large init so that every term matters
        # data tokens: any id, except that a start token does not occur in the data
        tok = torch.randint(0, c.V if bos < 0 else bos, (S_B * S_T + 1,), generator=gen)
        x, y = sequences(tok, S_B, S_T, bos)
        write_checkpoint(os.path.join(outdir, name + ".ckpt"), c, p32, S_T, 0)
        # initial logits, loss and gradients in float64 from the float32 weights
        p = leaf(p32, torch.float64)
        logits = forward(p, c, x)
        loss0 = loss_fn(logits, y)
        loss0.backward()
        grads = [p[n].grad for n in PARAM_NAMES]
        gnorm0 = torch.norm(torch.stack([g.norm() for g in grads])).item()
        if clip is None: clip = float(f"{0.5 * gnorm0:.4g}")
        # NSTEPS AdamW steps on the same batch
        p = leaf(p32, torch.float64)
        opt = make_optimizer(p, S_LR, S_WD, S_BETAS, S_EPS)
        losses, clipped, active_steps, margin = [], False, [], math.inf
        for s in range(S_STEPS):
            lr_s = lr_at(s, S_LR, S_WARMUP, S_STEPS, S_MINLR)
            l, norm, active = train_step(reference_loss(p, c), [p[n] for n in PARAM_NAMES], opt,
                                         [(x, y)], lr_s, clip)
            losses.append(l); clipped |= active
            if active: active_steps.append(s)
            if clip > 0: margin = min(margin, abs(clip / (norm + 1e-6) - 1.0))   # distance from the threshold
        P = num_params(c)
        hdr = np.zeros(256, dtype="<i4")
        hdr[:10] = [STATE_MAGIC, STATE_VERSION, S_B, S_T, c.V, P, S_STEPS, S_WARMUP, w, int(clipped)]
        hyper = np.zeros(16, dtype="<f8")
        hyper[:7] = [S_LR, S_BETAS[0], S_BETAS[1], S_EPS, S_WD, clip, S_MINLR]
        with open(os.path.join(outdir, name + ".state"), "wb") as f:
            for a in (hdr, hyper, x.numpy().astype("<i4"), y.numpy().astype("<i4"),
                      logits.detach().numpy().astype("<f4"), np.array([loss0.item()], dtype="<f8"),
                      flat_f32(grads), np.array(losses, dtype="<f8"), flat_f32([p[n] for n in PARAM_NAMES])):
                f.write(a.tobytes())
        where = f" in steps {active_steps}" if clipped else ""
        near = f", norm >= {100 * margin:.1f}% from the threshold" if clip > 0 else ""
        print(f"wrote {name}: H {H} bos {bos} P {P} loss {loss0.item():.6f} -> {losses[-1]:.6f} grad_norm {gnorm0:.4f} "
              f"clip {clip:g} clipped {int(clipped)}{where}{near} ({time.time() - t0:.2f}s)")


# ----------------------------------------------------------------------------- self test

def expect_die(fn, *args):
    """Runs fn(*args), which should end in die(): -> its message ("" if it returned)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            fn(*args)
    except SystemExit:
        return err.getvalue().strip()
    return ""


def self_test():
    """Checks: autograd vs finite differences, blocked == unblocked attention, checkpoint round
    trip (versions 1 and 2), ALiBi slopes of both versions, the CRC, the start token in batches
    and evaluation chunks, LR schedule, loader wrap."""
    ok = True
    def check(what, good):
        nonlocal ok
        ok &= bool(good); print(f"{'ok  ' if good else 'FAIL'} {what}")
    for sm, neg, pos, rp, w in [(False, 2, 2, True, 5), (True, 1, 2, False, 3)]:
        c = Config(V=11, L=2, H=4, C=16, F=24, w=w, softmax=sm, neg=neg, pos=pos, rope=rp)
        gen = torch.Generator().manual_seed(7)
        p = leaf(init_params(c, gen, 0.3, 0.1), torch.float64)
        x = torch.randint(0, c.V, (2, 13), generator=gen); y = torch.randint(0, c.V, (2, 13), generator=gen)
        loss_fn(forward(p, c, x), y).backward()
        worst = 0.0
        for name in PARAM_NAMES:
            for j in torch.randint(0, p[name].numel(), (3,), generator=gen).tolist():
                with torch.no_grad():
                    flat, h = p[name].view(-1), 1e-5
                    old = flat[j].item()
                    flat[j] = old + h; lp = loss_fn(forward(p, c, x), y).item()
                    flat[j] = old - h; lm = loss_fn(forward(p, c, x), y).item()
                    flat[j] = old
                fd, ag = (lp - lm) / (2 * h), p[name].grad.view(-1)[j].item()
                worst = max(worst, abs(fd - ag) / max(1e-3, abs(fd)))
        check(f"grad vs finite differences ({'softmax' if sm else 'sigmoid'}), worst err {worst:.1e}", worst < 1e-6)
        with torch.no_grad():
            a, b = forward(p, c, x, block=256), forward(p, c, x, block=4)
        check("blocked attention == full attention", torch.allclose(a, b, rtol=0, atol=1e-12))
    tmp = tempfile.mkdtemp(prefix="swat_selftest_")
    try:
        ok &= self_test_files(check, tmp, c, p)
    finally:
        shutil.rmtree(tmp)
    check("lr: warmup 0, 1 step -> lr", lr_at(0, 3e-4, 0, 1, 0.1) == 3e-4)
    check("lr: warmup ramp, then cosine", lr_at(0, 1.0, 4, 10, 0.1) == 0.25 and lr_at(3, 1.0, 4, 10, 0.1) == 1.0
          and lr_at(4, 1.0, 4, 10, 0.1) == 1.0 and abs(lr_at(7, 1.0, 4, 10, 0.1) - 0.55) < 1e-15)
    ld = Loader(torch.arange(25), 2, 4, "test")   # 25 tokens: batches at 0, 8, 16 (9 left), then wrap
    check("loader cursor and wrap", [ld.next()[0][0, 0].item() for _ in range(5)] == [0, 8, 16, 0, 8])

    # ALiBi slopes against the spec's formulas, written out independently of slope_magnitude
    worst, bad = 0.0, []
    for H in range(1, 17):
        for neg, pos in {(H // 2, H - H // 2), (H, 0), (0, H), (0, 0), (H // 3, H // 2), (1, 0), (0, 1), (H - 1, 1)}:
            if neg < 0 or pos < 0 or neg + pos > H: continue
            for version in (1, 2):
                got = alibi_slopes(Config(H=H, C=2 * H, neg=neg, pos=pos, version=version))
                x = 2.0 if version == 1 else 2.0 ** (8.0 / H)          # the official code's base
                want = [-1 / x ** (h + 1) if h < neg else 1 / x ** (h - neg + 1) if h < neg + pos else 0.0
                        for h in range(H)]
                err = max(abs(g - w_) / max(abs(w_), 1e-300) for g, w_ in zip(got, want))
                worst = max(worst, err)
                if err > 1e-13 or any((g < 0) != (w_ < 0) or (g == 0) != (w_ == 0) for g, w_ in zip(got, want)):
                    bad.append((H, neg, pos, version))
    check(f"ALiBi slopes, H 1..16, 8 NEG:POS each, versions 1 and 2, vs the formula (worst rel err {worst:.1e})"
          + (f": wrong for {bad[:4]}" if bad else ""), not bad)
    check("ALiBi slopes: H = 8 gives 2^-k in both versions; H = 6 v2 3:3 is -2^(-4/3), -2^(-8/3), -2^-4, +...",
          alibi_slopes(Config(H=8, C=16, neg=4, pos=4, version=2)) == [-0.5, -0.25, -0.125, -0.0625, 0.5, 0.25, 0.125, 0.0625]
          and alibi_slopes(Config(H=8, C=16, neg=4, pos=4, version=1)) == alibi_slopes(Config(H=8, C=16, neg=4, pos=4))
          and alibi_slopes(Config(H=6, C=12, neg=3, pos=3, version=2)) ==
              [-2 ** (-4 / 3), -2 ** (-8 / 3), -1 / 16, 2 ** (-4 / 3), 2 ** (-8 / 3), 1 / 16]
          and alibi_slopes(Config(H=6, C=12, neg=3, pos=3, version=1)) == [-0.5, -0.25, -0.125, 0.5, 0.25, 0.125]
          and alibi_slopes(Config(H=12, C=24, neg=12, pos=0, version=2))[11] == -1 / 256)

    # start token: batches and evaluation chunks (spec sections 2 and 5)
    t = torch.arange(100, 125)                       # 25 data tokens
    ld, ldb = Loader(t, 2, 4, "test"), Loader(t, 2, 4, "test", bos=7)
    same_order, layout = True, True
    for _ in range(5):
        (x0, y0), (x1, y1) = ld.next(), ldb.next()
        p0 = x0[0, 0].item() - 100                   # this batch's cursor
        same_order &= ld.pos == ldb.pos and x1[0, 1].item() == x0[0, 0].item()
        for b in range(2):
            want_x = [7] + list(range(100 + p0 + 4 * b, 100 + p0 + 4 * b + 3))
            want_y = list(range(100 + p0 + 4 * b, 100 + p0 + 4 * b + 4))
            layout &= x1[b].tolist() == want_x and y1[b].tolist() == want_y
    check("start token batches: inputs [bos, t[p+bT] .. t[p+bT+T-2]], targets t[p+bT] .. t[p+bT+T-1]", layout)
    check("start token batches: the cursor advances and wraps as without one", same_order)
    x, y = sequences(t[:3 * 5 + 1], 3, 5, 7)
    check("start token evaluation chunks: [bos, t[cE] .. t[cE+E-2]] -> t[cE] .. t[cE+E-1]",
          x.tolist() == [[7, 100, 101, 102, 103], [7, 105, 106, 107, 108], [7, 110, 111, 112, 113]]
          and y.tolist() == [[100 + 5 * i + j for j in range(5)] for i in range(3)]
          and eval_chunks(t, 5, 0) == 4 and eval_chunks(t, 6, 0) == 4 and eval_chunks(t, 5, 2) == 2)
    cb = Config(V=11, L=1, H=2, C=8, F=8, w=3, neg=1, pos=1, bos=10)
    pb = init_params(cb, torch.Generator().manual_seed(3), 0.3, 0.1)
    toks = torch.randint(0, 10, (41,), generator=torch.Generator().manual_seed(4))
    lb, K = evaluate(leaf(pb, torch.float64), cb, toks, 8, 3)
    xb = torch.cat((torch.full((5, 1), 10), toks[:40].view(5, 8)[:, :-1]), 1)
    want = loss_fn(forward(leaf(pb, torch.float64), cb, xb, window=3), toks[:40].view(5, 8)).item()
    check("evaluate with a start token = forward on [bos, chunk[:-1]] against the chunk",
          K == 5 and abs(lb - want) <= 1e-14 * abs(want))
    sh = os.path.join(os.path.dirname(os.path.abspath(__file__)), "make_states.sh")
    if os.path.exists(sh):
        listed = next((l.split('"')[1].split() for l in open(sh) if l.startswith('names="')), None)
        check("dev/make_states.sh lists the names of STATE_CONFIGS", listed == [cfg[0] for cfg in STATE_CONFIGS])
    ok &= self_test_trainer(check)
    print("self test passed" if ok else "self test FAILED")
    return ok


def self_test_trainer(check):
    """What the trainer adds: train_swat's generator and shuffle, micro-batches, the resumable
    checkpoint. (tests/torchrun.sh checks them against train_swat itself.)"""
    ok = True
    def chk(what, good):
        nonlocal ok
        ok &= bool(good); check(what, good)
    def scalar_splitmix(state):   # rng_next, one value at a time in Python integers
        state = (state + 0x9E3779B97F4A7C15) % 2 ** 64
        z = (state ^ (state >> 30)) * 0xBF58476D1CE4E5B9 % 2 ** 64
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB % 2 ** 64
        return z ^ (z >> 31), state
    same = True
    for start in (0, 1337 ^ INIT_SALT, 2 ** 64 - 5):
        got, end = splitmix64(start, 5)
        state, want = start, []
        for _ in range(5):
            z, state = scalar_splitmix(state)
            want.append(z)
        same &= got.tolist() == want and end == state
    chk("splitmix64 = rng_next one at a time (state 0 gives 0xe220a8397b1dcdaf first)",
        same and int(splitmix64(0, 1)[0][0]) == 0xE220A8397B1DCDAF)
    order, state = list(range(10)), (7 * SHUFFLE_MULT + 3 + 1) % 2 ** 64
    for i in range(9, 0, -1):
        z, state = scalar_splitmix(state)
        j = z % (i + 1)
        order[i], order[j] = order[j], order[i]
    chk("shuffle_order = Fisher-Yates with rng_next % (i+1), i from the end",
        shuffle_order(10, 7, 3).tolist() == order)
    t = torch.arange(1000, 1161)                              # 161 tokens: 20 sequences of 8
    a, b = Loader(t, 3, 8, "test", shuffle=True, seed=5), Loader(t, 3, 8, "test", shuffle=True, seed=5)
    seen = [a.next()[0][:, 0].tolist() for _ in range(9)]     # 6 batches an epoch, 2 sequences left
    b.seek(a.pos, a.epoch)
    first_epoch = sorted(x for batch in seen[:6] for x in batch)
    chk("shuffled loader: an epoch takes each sequence once, skips the partial batch; seek resumes",
        a.epoch == 1 and len(set(first_epoch)) == 18 and all((x - 1000) % 8 == 0 for x in first_epoch)
        and torch.equal(a.next()[0], b.next()[0]))
    c = Config(V=11, L=2, H=4, C=16, F=24, w=5)
    p0 = init_params_splitmix(c, 3)
    x = torch.randint(0, c.V, (4, 9), generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, c.V, (4, 9), generator=torch.Generator().manual_seed(2))
    after = []
    for micro in ([(x, y)], [(x[:2], y[:2]), (x[2:], y[2:])]):
        p = leaf(p0, torch.float64)
        opt = make_optimizer(p, 1e-2, 0.1)
        loss = train_step(reference_loss(p, c), [p[n] for n in PARAM_NAMES], opt, micro, 1e-2, 0.5)[0]
        after.append((loss, p))
    d = max((after[0][1][n] - after[1][1][n]).abs().max().item() for n in PARAM_NAMES)
    chk(f"train_step: 2 micro-batches = 1 batch (loss, clipped AdamW step; max difference {d:.0e})",
        abs(after[0][0] - after[1][0]) < 1e-14 and d < 1e-13)
    tmp = tempfile.mkdtemp(prefix="swat_selftest_")
    try:
        path = os.path.join(tmp, "state.ckpt")
        moments = adam_moments(opt, [p[n] for n in PARAM_NAMES])
        ints = [TRAINER_STATE_MAGIC, 9, 2, 4, 9, 3, 1, 6, 2, -5] + [0] * 6
        doubles = [1e-2, 0.1, 0.9, 0.95, 1e-8, 0.1, 0.5] + [0.0] * 9
        write_checkpoint(path, c, p, 9, 1, {"m": moments[0], "v": moments[1], "ints": ints,
                                             "doubles": doubles})
        c2, p2, hdr, state = read_checkpoint(path, with_state=True)
        P = num_params(c)
        chk("resumable checkpoint: 1024 + 12P + 256 bytes, header[15] = 1, moments and trainer "
            "state read back", os.path.getsize(path) == 1024 + 12 * P + 256 and hdr[15] == 1
            and state["ints"] == ints and state["doubles"] == doubles and all(
                torch.equal(m2, m1.float()) for m2, m1 in zip(state["m"] + state["v"],
                                                              moments[0] + moments[1])))
    finally:
        shutil.rmtree(tmp)
    return ok


def self_test_files(check, tmp, c, p):
    """Checkpoint checks in directory tmp: v2 round trip, CRC, hand-written v1 files."""
    ok = True
    def chk(what, good):
        nonlocal ok
        ok &= bool(good); check(what, good)
    path = os.path.join(tmp, "v2.ckpt")
    for bos in (-1, 3):
        c.bos = bos
        write_checkpoint(path, c, p, 13, 5)
        c2, p2, hdr = read_checkpoint(path)
        chk(f"checkpoint round trip, version 2, start token {bos}", c2 == c and c2.version == 2 and hdr[1] == 2 and
            hdr[13] == 13 and hdr[14] == 5 and hdr[16] == bos and
            all(torch.equal(p2[n], p[n].detach().float()) for n in PARAM_NAMES))
    c.bos = -1
    data = bytearray(open(path, "rb").read())
    stored = struct.unpack_from("<I", data, CKPT_CRC_OFFSET)[0]
    zeroed = data[:CKPT_CRC_OFFSET] + bytes(4) + data[CKPT_CRC_OFFSET + 4:]
    chk("CRC: header[17] is the uint32 zlib.crc32 of the file with header[17] = 0",
        stored == zlib.crc32(bytes(zeroed)) and hdr[17] == np.array([stored], dtype="<u4").view("<i4")[0])
    # a flipped byte anywhere (header fields that stay plausible, the CRC itself, weights,
    # the last byte, a trainer-state tail) is rejected with the checksum message
    with_tail = bytearray(zeroed)
    struct.pack_into("<i", with_tail, 15 * 4, 1)
    with_tail += bytes(range(256)) * 3
    struct.pack_into("<I", with_tail, CKPT_CRC_OFFSET, zlib.crc32(bytes(with_tail)))
    tail_path = os.path.join(tmp, "tail.ckpt")
    open(tail_path, "wb").write(with_tail)
    chk("CRC: a file with a trainer-state tail and its CRC loads", expect_die(read_checkpoint, tail_path) == "")
    cases = [(data, o, f"byte {o}") for o in (8, 13 * 4, 14 * 4 + 1, 16 * 4, CKPT_CRC_OFFSET, CKPT_CRC_OFFSET + 3,
                                               200 * 4, HEADER_BYTES, HEADER_BYTES + 777, len(data) - 1)]
    cases += [(with_tail, len(with_tail) - 5, "a byte of the tail")]
    bad = []
    for blob, off, what in cases:
        for flip in (0x01, 0x80):
            b = bytearray(blob); b[off] ^= flip
            open(os.path.join(tmp, "bad.ckpt"), "wb").write(b)
            msg = expect_die(read_checkpoint, os.path.join(tmp, "bad.ckpt"))
            if CRC_MISMATCH not in msg or "\n" in msg: bad.append((what, flip, msg))
    chk(f"CRC: {2 * len(cases)} single-bit flips (header, CRC, weights, tail) rejected with '{CRC_MISMATCH}'"
        + (f"; not: {bad[:2]}" if bad else ""), not bad)
    # version 1, written by hand as the old code did: header[1] = 1, [16] = [17] = 0, no CRC
    c1 = Config(V=c.V, L=c.L, H=6, C=24, F=c.F, w=c.w, softmax=c.softmax, neg=3, pos=2, rope=c.rope)
    p1 = init_params(c1, torch.Generator().manual_seed(11), 0.3, 0.1)
    hdr1 = [CKPT_MAGIC, 1, c1.V, c1.L, c1.H, c1.C, c1.F, c1.w, int(c1.softmax), 3, 2, int(c1.rope), 10000, 32, 7, 0]
    v1 = struct.pack("<256i", *(hdr1 + [0] * 240)) + b"".join(
        p1[n].numpy().astype("<f4").tobytes() for n in PARAM_NAMES)
    v1_path = os.path.join(tmp, "v1.ckpt")
    open(v1_path, "wb").write(v1)
    c3, p3, hdr3 = read_checkpoint(v1_path)
    chk("version 1 file: loads with version 1, no start token, slopes 2^-k (H = 6, 3:2)",
        c3.version == 1 and c3.bos == -1 and alibi_slopes(c3) == [-0.5, -0.25, -0.125, 0.5, 0.25, 0.0] and
        all(torch.equal(p3[n], p1[n]) for n in PARAM_NAMES))
    chk("version 1 model saved again: version 1, the same bytes", checkpoint_bytes(c3, p3, 32, 7) == v1)
    x = torch.randint(0, c1.V, (1, 9), generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        d = (forward(p3, c3, x) - forward(p3, Config(**{**c3.__dict__, "version": 2}), x)).abs().max().item()
    chk(f"version 1 and 2 rules give different H = 6 models (max logit difference {d:.1e})", d > 1e-4)
    b = bytearray(v1); struct.pack_into("<i", b, 16 * 4, 5)
    open(v1_path, "wb").write(b)
    chk("version 1 file with header[16] != 0: rejected", "corrupt header" in expect_die(read_checkpoint, v1_path))
    b = bytearray(v1); struct.pack_into("<i", b, 4, 3)
    open(v1_path, "wb").write(b)
    chk("version 3: rejected", "unsupported checkpoint version 3" in expect_die(read_checkpoint, v1_path))
    return ok


# ----------------------------------------------------------------------------- main

# train_swat's defaults (./train_swat --help); in the parser None means "not given"
RUN_DEFAULTS = {"batch": 16, "seq": 256, "steps": 600, "warmup": 40, "lr": 2e-3,
                "min_lr_ratio": 0.1, "wd": 0.1, "clip": 1.0, "beta1": 0.9, "beta2": 0.95,
                "seed": 1337, "shuffle": "on"}
LOG_DEFAULTS = {"val_every": 50, "val_chunks": 64, "final_val_chunks": 0, "save_every": 0}
SHAPE_FLAGS = [("vocab", "V"), ("layers", "L"), ("heads", "H"), ("dim", "C"), ("ffn", "F")]
# the flags that --resume refuses, as train_swat's does: the checkpoint holds them
MODEL_FLAGS = ["layers", "heads", "dim", "ffn", "vocab", "attn", "alibi", "rope", "rope_theta"]
RUN_FLAGS = ["batch", "seq", "window", "lr", "min_lr_ratio", "warmup", "steps", "wd", "clip",
             "beta1", "beta2", "seed", "shuffle"]
# the flags of the log's "args" line, which --resume reads back unless they are given
REMEMBERED = ["train", "val", "val_every", "val_chunks", "final_val_chunks", "save_every"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch reference for train_swat.c and its trainer "
                                 "on GPUs (dev/README.md, doc/gpu.md). The training defaults are "
                                 "train_swat's.")
    a = ap.add_argument
    a("--train", help="training token shard (a glob pattern in quotes: several, in order)")
    a("--val", help="validation token shard")
    a("--out", help="directory for log.txt and model.ckpt (default: none, only --save)")
    a("--overwrite", action="store_true", help="replace the run in --out")
    a("--save", help="also write the final checkpoint here")
    a("--init", help="start from a checkpoint's weights and model config, fresh optimizer")
    a("--resume", help="continue a run (train_swat's or this script's): weights, AdamW "
                       "moments, schedule, data position; --out defaults to its folder")
    a("--steps", type=int, help="optimizer steps (default 600; 0 with --save writes the init)")
    a("--stop-after", type=int, default=0, help="stop (and save) after N steps of this run")
    a("--batch", type=int, help="sequences per step over all the ranks (default 16)")
    a("--grad-accum", type=int, default=1, help="a rank's share of a step in K micro-batches")
    a("--seq", type=int, help="training sequence length (default 256; --init: the checkpoint's)")
    a("--window", type=int, help="attention window w (default 64)")
    a("--layers", type=int); a("--heads", type=int); a("--dim", type=int); a("--ffn", type=int)
    a("--vocab", type=int); a("--attn", choices=["sigmoid", "softmax"])
    a("--alibi", help="NEG:POS (default H/2:H/2)"); a("--rope", choices=["on", "off"])
    a("--rope-theta", type=int)
    a("--bos", type=int, help="start token id (-1 = none; with --init the checkpoint's)")
    a("--lr", type=float, help="peak learning rate (default 2e-3)")
    a("--min-lr-ratio", type=float, help="the cosine decays to lr*X (default 0.1)")
    a("--warmup", type=int, help="warmup steps (default 40, or steps/5 for runs below 200)")
    a("--wd", type=float, help="AdamW weight decay on matrices (default 0.1)")
    a("--clip", type=float, help="clip gradients to this global norm; 0: off (default 1.0)")
    a("--beta1", type=float); a("--beta2", type=float, help="AdamW betas (default 0.9, 0.95)")
    a("--seed", type=int, help="seed of the initialisation and the data order (default 1337)")
    a("--shuffle", choices=["on", "off"], help="train_swat's shuffled order or the spec's "
                                               "sequential one (default on)")
    a("--param-init", choices=["splitmix", "torch-randn"], default="splitmix",
      help="splitmix: train_swat's initialisation, the same weights (default); torch-randn: this "
           "script's earlier one, torch.randn from --seed, every matrix N(0, 0.02^2)")
    a("--val-every", type=int, help="validation every N steps (default 50; 0: not during the run)")
    a("--val-chunks", type=int, help="chunks of T for the periodic validation (default 64; 0 all)")
    a("--final-val-chunks", type=int, help="chunks for the final validation (0 all; -1 none)")
    a("--save-every", type=int, help="write OUTDIR/model.ckpt every N steps (default 0: at end)")
    a("--device", choices=["cpu", "cuda"], default="cpu",
      help="cuda: GPU LOCAL_RANK of this node (default cpu)")
    a("--dtype", choices=["float32", "bfloat16", "float64"], default="float32",
      help="float32 (default; the reference checks), bfloat16 (autocast on the matrix products "
           "and the attention, float32 weights, moments and loss) or float64 (comparisons)")
    a("--threads", type=int, help="torch threads per rank (default: cores / ranks on this node)")
    a("--eval"); a("--eval-window", type=int, help="default: the model's window")
    a("--eval-len", type=int, help="default: the checkpoint's T, header[13] (256 if 0), else --seq")
    a("--eval-chunks", type=int, default=0, help="max chunks, 0 = all")
    a("--bench-steps", type=int, default=0, help="time N training steps after one untimed step")
    a("--attn-block", type=int, default=256,
      help="queries per attention block in training (0: one block, the masked T x T attention)")
    a("--write-states"); a("--self-test", action="store_true")
    return ap.parse_args(argv)


def env_int(name, default):
    value = os.environ.get(name, str(default))
    if not value.isdigit(): die(f"environment variable {name}={value} is not a number")
    return int(value)


def start_ranks(args):
    """This process's rank from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK; one process
    without them) and its device; with several ranks, the process group through the env://
    rendezvous (MASTER_ADDR, MASTER_PORT): NCCL on CUDA, gloo on the CPU.
    -> (rank, ranks, device)"""
    rank, ranks, local = env_int("RANK", 0), env_int("WORLD_SIZE", 1), env_int("LOCAL_RANK", 0)
    if not 0 <= rank < ranks: die(f"RANK {rank} is not below WORLD_SIZE {ranks}")
    device = torch.device("cpu")
    if args.device == "cuda":
        if not torch.cuda.is_available():
            die(f"--device cuda: PyTorch {torch.__version__} sees no CUDA GPU on this machine "
                "(torch.cuda.is_available() is False); use --device cpu")
        if local >= torch.cuda.device_count():
            die(f"LOCAL_RANK {local}: this node has {torch.cuda.device_count()} CUDA GPUs")
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    cores = (os.cpu_count() or 1) // env_int("LOCAL_WORLD_SIZE", 1)
    torch.set_num_threads(max(1, args.threads or cores))
    if ranks > 1:
        if args.write_states or args.self_test:
            die("--write-states and --self-test run in one process")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://",
                                rank=rank, world_size=ranks)
    return rank, ranks, device


def check_shape_flags(args, c, what):
    """Shape flags given with a checkpoint must say what it says."""
    for flag, field in SHAPE_FLAGS:
        given, have = getattr(args, flag), getattr(c, field)
        if given is not None and given != have:
            die(f"--{flag} {given} does not match the checkpoint ({have})")
    if args.bos is not None and args.bos != c.bos:
        die(f"--bos {args.bos} does not match the checkpoint's start token "
            f"({c.bos if c.bos >= 0 else 'none'}{', a version 1 file' if c.version == 1 else ''})")
    if c.version == 1:
        print(f"{what}: version 1 checkpoint, read as written (ALiBi slopes 2^-k, no start token)"
              + ("; --save writes version 1 again, so that the model keeps its meaning"
                 if args.save else ""))


def model_config(args):
    """The model and its weights: from --init or --resume (then shape flags must agree), else
    from the flags and train_swat's defaults. -> (Config, float32 params, header or None, state)"""
    state, ckpt = None, args.init or args.resume
    if args.init and args.resume: die("--init and --resume exclude each other")
    if args.resume:
        for flag in MODEL_FLAGS + RUN_FLAGS:
            if getattr(args, flag) is not None:
                die(f"--{flag.replace('_', '-')} cannot be used with --resume (the checkpoint "
                    "holds it)")
        c, p32, ihdr, state = read_checkpoint(args.resume, with_state=True)
        if state is None: die(f"{args.resume}: has no optimizer state to resume from (use --init)")
    elif args.init:
        c, p32, ihdr = read_checkpoint(args.init)
    else:
        c, ihdr = Config(), None
        for flag, field in SHAPE_FLAGS:
            if getattr(args, flag) is not None: setattr(c, field, getattr(args, flag))
        c.neg = c.pos = c.H // 2
        if args.bos is not None: c.bos = args.bos
    if ckpt: check_shape_flags(args, c, ckpt)
    # non-shape settings may be changed by flags also with --init
    if args.window is not None: c.w = args.window
    if args.attn: c.softmax = args.attn == "softmax"
    if args.rope: c.rope = args.rope == "on"
    if args.rope_theta is not None: c.theta = args.rope_theta
    if args.alibi:
        try: c.neg, c.pos = (int(v) for v in args.alibi.split(":"))
        except ValueError: die(f"--alibi wants NEG:POS, got {args.alibi}")
    c.check()
    if not ckpt:
        seed = args.seed if args.seed is not None else RUN_DEFAULTS["seed"]
        p32 = (init_params_splitmix(c, seed) if args.param_init == "splitmix"
               else init_params(c, torch.Generator().manual_seed(seed)))
    return c, p32, ihdr, state


def run_eval(args, c, p32, ihdr, rank, ranks, device):
    """Evaluation in float64 (the reference); E and W default as in train_swat.c."""
    toks = read_shard(args.eval, c.V)
    E = args.eval_len
    if E is None: E = (int(ihdr[13]) or 256) if ihdr is not None else (args.seq or 256)
    W = args.eval_window if args.eval_window is not None else c.w
    if E < 1 or W < 1: die("--eval-len and --eval-window must be >= 1")
    t0 = time.time()
    p = {n: t.to(device, torch.float64) for n, t in p32.items()}
    loss, K = evaluate(p, c, toks, E, W, args.eval_chunks, rank=rank, ranks=ranks)
    print(f"eval: {K} chunks of {E} tokens, window {W}, {time.time() - t0:.1f}s")
    print(f"eval_loss {loss:.8f}")


def run_settings(args, state, ihdr):
    """The run's settings as train_swat's trainer state (spec section 12.2): the checkpoint's
    with --resume, else the flags' and train_swat's defaults (with --init, T is the checkpoint's
    unless --seq is given). -> (dict, a note on a fitted warmup or "")"""
    if state is not None:
        i, d = state["ints"], state["doubles"]
        return dict(steps=i[1], warmup=i[2], B=i[3], T=i[4], seed=i[5], shuffle=bool(i[6]),
                    cursor=i[7], epoch=i[8], sample_rng=i[9], lr=d[0], min_lr_ratio=d[1],
                    beta1=d[2], beta2=d[3], eps=d[4], wd=d[5], clip=d[6]), ""
    get = lambda flag: RUN_DEFAULTS[flag] if getattr(args, flag) is None else getattr(args, flag)
    T = args.seq
    if T is None: T = int(ihdr[13]) if ihdr is not None and ihdr[13] > 0 else 256
    st = dict(steps=get("steps"), warmup=get("warmup"), B=get("batch"), T=T, seed=get("seed"),
              shuffle=get("shuffle") == "on", cursor=0, epoch=0,
              sample_rng=get("seed") ^ SAMPLE_SALT, lr=get("lr"),
              min_lr_ratio=get("min_lr_ratio"), beta1=get("beta1"), beta2=get("beta2"),
              eps=1e-8, wd=get("wd"), clip=get("clip"))
    note = ""
    if args.warmup is None and st["warmup"] > st["steps"] // 5:   # a short run: fit the default
        st["warmup"] = st["steps"] // 5
        note = (f"warmup: {st['warmup']} steps (the default 40, fitted to a run of "
                f"{st['steps']} steps)")
    if st["steps"] < 0 or st["warmup"] < 0 or st["B"] < 1 or T < 1:
        die("--steps and --warmup must be >= 0, --batch and --seq >= 1")
    return st, note


class Trainer:
    """The model on this rank's device, DistributedDataParallel around it with several ranks,
    and AdamW: what a step needs. Rank r of R takes sequences r*B/R .. (r+1)*B/R - 1 of each
    batch of B, in K micro-batches (train_swat_mpi's split), so R and K change only rounding."""
    def __init__(self, args, c, p32, st, rank, ranks, device):
        self.rank, self.ranks, self.device, self.clip = rank, ranks, device, st["clip"]
        self.K, self.B = args.grad_accum, st["B"]
        if self.K < 1: die("--grad-accum must be >= 1")
        if self.B % (ranks * self.K):
            if ranks > 1:
                die(f"--batch {self.B} does not split over {ranks} ranks x --grad-accum {self.K}")
            die(f"--batch {self.B} is not a multiple of --grad-accum {self.K}")
        self.Bm = self.B // (ranks * self.K)     # sequences in one micro-batch of one rank
        if args.attn_block < 0: die("--attn-block must be >= 0")
        dtype = torch.float64 if args.dtype == "float64" else torch.float32   # master weights
        p = {n: t.to(device, dtype) for n, t in p32.items()}
        self.model = SWAT(c, p, args.attn_block or st["T"], args.dtype == "bfloat16")
        self.ddp = None
        if ranks > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.plist = [getattr(self.model, n) for n in PARAM_NAMES]
        self.opt = make_optimizer(self.model.params(), st["lr"], st["wd"],
                                  (st["beta1"], st["beta2"]), st["eps"],
                                  foreach=None if device.type == "cuda" else False)

    def step(self, x, y, lr_s):
        """x, y: the whole batch (B, T) -> (mean loss of all B sequences, grad norm unclipped)"""
        first, m = self.rank * self.B // self.ranks, self.Bm
        micro = [(x[first + k * m:first + (k + 1) * m].to(self.device),
                  y[first + k * m:first + (k + 1) * m].to(self.device)) for k in range(self.K)]
        loss, norm, _ = train_step(self.ddp or self.model, self.plist, self.opt, micro, lr_s,
                                   self.clip, self.ddp.no_sync if self.ddp else None)
        if self.ranks > 1: loss = ranks_sum([loss], self.device)[0] / self.ranks
        return loss, norm

    def checkpoint_state(self, st, step, loader):
        """What follows the parameters in a resumable checkpoint after `step` steps (spec
        sections 8.2 and 12.2): the AdamW moments and the trainer state; None before a step."""
        moments = adam_moments(self.opt, self.plist)
        if moments is None: return None
        ints = [TRAINER_STATE_MAGIC, st["steps"], st["warmup"], st["B"], st["T"], st["seed"],
                int(st["shuffle"]), loader.pos, loader.epoch, st["sample_rng"]]
        doubles = [st["lr"], st["min_lr_ratio"], st["beta1"], st["beta2"], st["eps"], st["wd"],
                   st["clip"]]
        return {"m": moments[0], "v": moments[1],
                "ints": ints + [0] * (TRAINER_STATE_INTS - len(ints)),
                "doubles": doubles + [0.0] * (TRAINER_STATE_DOUBLES - len(doubles))}

    def validate(self, val, T, chunks):
        """train_swat's validation: `chunks` chunks of T (0: all) with the training window,
        split over the ranks. -> (loss, chunks, SinkStats)"""
        c = self.model.c
        sinks = SinkStats(c, self.device)
        loss, K = evaluate(self.model, c, val, T, c.w, chunks, self.Bm * self.K, sinks,
                           self.rank, self.ranks)
        return loss, K, sinks


def flops_per_token(c, T, w):
    """train_swat's count for its log: forward + backward = 3x the forward, 2 per multiply-add
    of every matrix and 4*C per key in the band."""
    band = sum(min(m + 1, w) for m in range(T)) / max(1, T)
    macs = c.L * (4 * c.C * c.C + 3 * c.C * c.F) + c.V * c.C
    return 3.0 * (2.0 * macs + 4.0 * c.L * band * c.C)


def config_lines(c, st, threads):
    """The lines that open a run, as train_swat prints and logs them (the log's `train:` line
    tells dev/plot_log.py B and T)."""
    P = num_params(c)
    bos = c.bos if c.bos >= 0 else "none"
    return [f"model: V={c.V} L={c.L} H={c.H} C={c.C} F={c.F} window={c.w} "
            f"attn={'softmax' if c.softmax else 'sigmoid'} alibi={c.neg}:{c.pos} "
            f"rope={'on' if c.rope else 'off'} theta={c.theta} bos={bos} version={c.version}",
            f"parameters: {P} ({P / 1e6:.2f} M)",
            f"train: batch={st['B']} seq={st['T']} steps={st['steps']} lr={st['lr']:g} "
            f"min_lr_ratio={st['min_lr_ratio']:g} warmup={st['warmup']} wd={st['wd']:g} "
            f"clip={st['clip']:g} seed={st['seed']} shuffle={'on' if st['shuffle'] else 'off'} "
            f"threads={threads}",
            f"flops per token (forward+backward): {flops_per_token(c, st['T'], c.w) / 1e6:.1f} M"]


def remembered_flags(args, log_path):
    """--resume: the flags of REMEMBERED that were not given, from the last "args" line of the
    run's log (train_swat's resume_settings)."""
    last = None
    if log_path and os.path.exists(log_path):
        lines = open(log_path).read().splitlines()
        last = next((l for l in reversed(lines) if l.startswith("args\t")), None)
    taken = []
    fields = last.split("\t")[1:] if last else []
    for flag, value in zip(fields[0::2], fields[1::2]):
        name = flag[2:].replace("-", "_")
        if name in REMEMBERED and getattr(args, name) is None:
            setattr(args, name, value if name in ("train", "val") else int(value))
            taken.append(f"{flag} {value}")
    if taken: print(f"resume: from {log_path}: {' '.join(taken)}")


class RunLog:
    """OUTDIR/log.txt in train_swat's format (spec section 12.4), written by rank 0 only."""
    def __init__(self, path, append):
        self.f = open(path, "a" if append else "w") if path else None

    def write(self, line):
        if self.f:
            self.f.write(line + "\n")
            self.f.flush()


def run_dir(args, rank, resumed):
    """-> (OUTDIR/log.txt, OUTDIR/model.ckpt), or (None, None) without --out and --resume."""
    out = args.out or (os.path.dirname(os.path.abspath(args.resume)) if resumed else None)
    if not out: return None, None
    log_path, ckpt_path = os.path.join(out, "log.txt"), os.path.join(out, "model.ckpt")
    if rank == 0:
        os.makedirs(out, exist_ok=True)
        held = [f for f in ("model.ckpt", "log.txt") if os.path.exists(os.path.join(out, f))]
        if held and not resumed and not args.overwrite:
            die(f"{out} already holds a run ({held[0]}): continue it with --resume {ckpt_path}, "
                "choose another --out, or pass --overwrite to replace it")
    return log_path, ckpt_path


def log_validation(log, step, loss, sinks):
    line = sinks.log_line(step)
    print(f"step {step} val_loss {loss:.6f} | sink heads {line.split()[2]} of {line.split()[3]}")
    log.write(f"val {step} loss {loss:.6f}")
    log.write(line)


def open_run(args, c, st, note, trainer, resumed, rank, ranks):
    """The run's shards, its log and what it prints first. -> (train tokens, val tokens or None,
    RunLog, checkpoint path or None)"""
    log_path, ckpt_path = run_dir(args, rank, resumed)
    if resumed: remembered_flags(args, log_path)
    for name, value in LOG_DEFAULTS.items():
        if getattr(args, name) is None: setattr(args, name, value)
    if not args.train: die("--train FILE is required for training (see --help)")
    if st["warmup"] > st["steps"]:
        die(f"--warmup {st['warmup']} is longer than the run (--steps {st['steps']}): pass "
            f"--warmup {st['steps']} or less")
    train = map_shards(args.train, c.V)
    val = read_shard(args.val, c.V) if args.val else None
    if val is not None and len(val) < st["T"] + 1:
        die(f"{args.val}: {len(val)} tokens are too few for one validation chunk of {st['T']}")
    log = RunLog(log_path if rank == 0 else None, resumed)
    for line in config_lines(c, st, torch.get_num_threads()):
        print(line)
        log.write(line)
    given = [(n, str(getattr(args, n))) for n in REMEMBERED if getattr(args, n) is not None]
    log.write("args" + "".join(f"\t--{n.replace('_', '-')}\t{v}" for n, v in given
                               if "\t" not in v))
    line = (f"pytorch: {torch.__version__} device={trainer.device.type} dtype={args.dtype} "
            f"ranks={ranks} grad_accum={trainer.K} micro_batch={trainer.Bm}")
    print(line)
    log.write(line)
    if note: print(note)
    if resumed: print(f"resuming {args.resume} at step {st['step']} of {st['steps']}, into "
                      f"{os.path.dirname(log_path)}")
    if ranks > 1 or trainer.K > 1:
        print(f"data parallel: {ranks} rank{'s' if ranks > 1 else ''} x {trainer.K} micro-batch"
              f"{'es' if trainer.K > 1 else ''} of {trainer.Bm} sequences per step")
    return train, val, log, ckpt_path


def run_train(args, c, p32, ihdr, state, rank, ranks, device):
    """train_swat's training loop: validation every --val-every steps, the step and its log
    line; then the final validation and the checkpoints. Rank 0 logs and writes."""
    st, note = run_settings(args, state, ihdr)
    resumed = state is not None
    step = st["step"] = int(ihdr[14]) if resumed else 0
    if resumed and step >= st["steps"]:
        die(f"{args.resume}: the run is complete ({step} of {st['steps']} steps)")
    trainer = Trainer(args, c, p32, st, rank, ranks, device)
    if st["steps"] == 0:   # write the freshly initialised (or --init) model
        if not args.save:
            die("--steps 0 trains nothing: give --save FILE to write the initial model")
        if rank == 0: write_checkpoint(args.save, c, p32, st["T"], 0)
        print(f"wrote {args.save} ({num_params(c)} parameters, no training)")
        return
    train, val, log, ckpt_path = open_run(args, c, st, note, trainer, resumed, rank, ranks)
    B, T = st["B"], st["T"]
    loader = Loader(train, B, T, args.train, c.bos, st["shuffle"], st["seed"])
    if resumed:
        loader.seek(st["cursor"], st["epoch"])
        set_adam_moments(trainer.opt, trainer.plist, state["m"], state["v"], step)
    save = lambda path: write_checkpoint(path, c, trainer.model.params(), T, step,
                                         trainer.checkpoint_state(st, step, loader))
    end = min(st["steps"], step + args.stop_after) if args.stop_after > 0 else st["steps"]
    while step < end:
        if val is not None and args.val_every and step % args.val_every == 0:
            log_validation(log, step, *trainer.validate(val, T, args.val_chunks)[::2])
        t0 = time.perf_counter()
        lr_s = lr_at(step, st["lr"], st["warmup"], st["steps"], st["min_lr_ratio"])
        loss, norm = trainer.step(*loader.next(), lr_s)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            die(f"step {step + 1}: the loss went non-finite (loss {loss}, norm {norm}); stopping, "
                "the last checkpoint is untouched")
        step += 1
        ms = 1e3 * (time.perf_counter() - t0)
        print(f"step {step}/{st['steps']} loss {loss:.6f} lr {lr_s:.6e} norm {norm:.4f} "
              f"ms {ms:.1f} tok/s {B * T / ms * 1e3:.0f}")
        log.write(f"step {step} loss {loss:.6f} lr {lr_s:.6e} norm {norm:.6f} ms {ms:.2f} "
                  f"tok_s {B * T / ms * 1e3:.1f}")
        if args.save_every and step % args.save_every == 0 and step < end and ckpt_path:
            if rank == 0: save(ckpt_path)
    if val is not None and step == st["steps"] and args.final_val_chunks >= 0:
        t0 = time.time()
        loss, K, sinks = trainer.validate(val, T, args.final_val_chunks)
        log_validation(log, step, loss, sinks)
        log.write(f"final_val_loss {loss:.6f}")
        print(f"final validation: {K} chunks of {T} tokens in {time.time() - t0:.1f} s "
              "(--final-val-chunks sets how many)")
    if rank == 0 and ckpt_path:
        save(ckpt_path)
        print(f"saved {ckpt_path} (step {step} of {st['steps']})")
        if step < st["steps"]: print(f"continue with: {sys.argv[0]} --resume {ckpt_path}")
    if rank == 0 and args.save:
        save(args.save)
        print(f"saved {args.save} (version {c.version})")


def run_bench(args, c, p32, rank, ranks, device):
    """Tokens per second of N training steps after one untimed step (random tokens without
    --train), and the peak memory: the GPU's on CUDA, the process's on the CPU."""
    st, _ = run_settings(args, None, None)
    B, T, steps = st["B"], st["T"], args.bench_steps
    if args.train:
        train = map_shards(args.train, c.V)
    else:
        gen = torch.Generator().manual_seed(st["seed"])
        train = torch.randint(0, c.V, (B * T * 4 + 1,), generator=gen)
    loader = Loader(train, B, T, "train shard", c.bos)
    trainer = Trainer(args, c, p32, st, rank, ranks, device)
    sched = lambda s: lr_at(s, st["lr"], st["warmup"], steps + 1, st["min_lr_ratio"])
    trainer.step(*loader.next(), sched(0))     # warm-up step, not timed
    cuda = device.type == "cuda"
    if cuda: torch.cuda.synchronize()
    t0 = time.perf_counter()
    for s in range(steps):
        trainer.step(*loader.next(), sched(s + 1))
    if cuda: torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if cuda:
        memory = f"gpu_memory_GB {torch.cuda.max_memory_allocated(device) / 2 ** 30:.2f}"
    else:
        memory = f"max_rss_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
    print(f"bench tokens_per_s {steps * B * T / dt:.1f} ms_per_step {1000 * dt / steps:.3f} "
          f"{memory} ranks {ranks} device {device.type} dtype {args.dtype}")


def main():
    args = parse_args()
    rank, ranks, device = start_ranks(args)
    if rank > 0: sys.stdout = open(os.devnull, "w")        # rank 0 prints, logs and saves
    if args.self_test: sys.exit(0 if self_test() else 1)
    if args.write_states: return write_states(args.write_states)
    if args.stop_after < 0 or args.bench_steps < 0:
        die("--stop-after and --bench-steps must be >= 0")
    c, p32, ihdr, state = model_config(args)
    if args.eval:
        run_eval(args, c, p32, ihdr, rank, ranks, device)
    elif args.bench_steps > 0:
        run_bench(args, c, p32, rank, ranks, device)
    else:
        run_train(args, c, p32, ihdr, state, rank, ranks, device)
    if ranks > 1: dist.destroy_process_group()


if __name__ == "__main__":
    main()
