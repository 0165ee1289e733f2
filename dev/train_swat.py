"""
Reference PyTorch implementation of SWAT (Sliding Window Attention Training, Fu et al. 2025)
for the C trainer train_swat.c. It follows doc/SPEC.md exactly: same model,
checkpoint format, token shards, batch order, AdamW, LR schedule, clipping and evaluation.
It also writes the debug states that test_swat.c checks the C code against (--write-states).
Checkpoints: writes version 2 (official ALiBi slopes 2^(-8k/H), start token, CRC-32 in
header[17]); reads versions 1 (slopes 2^-k, no start token, no CRC) and 2. A model loaded
from a version 1 file keeps its meaning: it is saved as version 1 again.

Run with a Python that has torch (Debian: /usr/bin/python3 with python3-torch), e.g.
  /usr/bin/python3 dev/train_swat.py --write-states dev/states
  /usr/bin/python3 dev/train_swat.py --train train.bin --steps 100 --save model.ckpt
  /usr/bin/python3 dev/train_swat.py --init model.ckpt --eval val.bin --eval-len 1024 --eval-window 128
  /usr/bin/python3 dev/train_swat.py --train train.bin --vocab 257 --bos 256 --save bos.ckpt   # bytes + a start token
"""
import argparse, contextlib, io, math, os, shutil, struct, sys, tempfile, time, zlib
from dataclasses import dataclass
import numpy as np
import torch
import torch.nn.functional as F

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


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


@dataclass
class Config:
    V: int = 256; L: int = 4; H: int = 4; C: int = 128; F: int = 352
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
    cos, sin = a.cos().to(x.dtype), a.sin().to(x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


def swat_attention(q, k, v, w, slopes, softmax, block=256):
    """q, k, v: (B, H, T, D). Query m sees keys n with m-w < n <= m; s = q.k/sqrt(D) + slope_h*(m-n).
    Sigmoid mode: a = sigmoid(s), unnormalised. Softmax mode: softmax over the window.
    Plain masked attention, done per block of queries: queries [s0, s1) only need keys
    [s0-w+1, s1), so the cost is O(T*(block+w)) instead of O(T^2) (long evaluations)."""
    B, H, T, D = q.shape
    slope = torch.tensor(slopes, dtype=q.dtype).view(1, H, 1, 1)
    out = []
    for s0 in range(0, T, block):
        s1, k0 = min(T, s0 + block), max(0, s0 - w + 1)
        dist = torch.arange(s0, s1)[:, None] - torch.arange(k0, s1)[None, :]     # m - n
        outside = (dist < 0) | (dist >= w)
        s = q[:, :, s0:s1] @ k[:, :, k0:s1].transpose(-1, -2) / math.sqrt(D) + slope * dist.to(q.dtype)
        if softmax:
            a = s.masked_fill(outside, float("-inf")).softmax(-1)
        else:
            a = torch.sigmoid(s).masked_fill(outside, 0.0)
        out.append(a @ v[:, :, k0:s1])
    return torch.cat(out, dim=2)


def forward(p, c, idx, window=None, block=256):
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
        o = swat_attention(q, k, v, w, slopes, c.softmax, block).transpose(1, 2).reshape(B, T, c.C)
        x = x + o @ p["wo"][l].T
        h = rmsnorm(x, p["mlp_norm"][l])
        x = x + (F.silu(h @ p["w_gate"][l].T) * (h @ p["w_up"][l].T)) @ p["w_down"][l].T
    return rmsnorm(x, p["final_norm"]) @ p["lm_head"].T


def loss_fn(logits, targets, reduction="mean"):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction=reduction)


# ----------------------------------------------------------------------------- files

def checkpoint_crc(data):
    """CRC-32 (zlib) of a whole checkpoint's bytes, computed with header[17] taken as 0."""
    crc = zlib.crc32(data[:CKPT_CRC_OFFSET])
    crc = zlib.crc32(b"\0\0\0\0", crc)
    return zlib.crc32(data[CKPT_CRC_OFFSET + 4:], crc)


def checkpoint_bytes(c, p, T, steps):
    """A checkpoint of version c.version: version 2 stores the start token in header[16] and the
    CRC in header[17] (its uint32 bit pattern); version 1 has 0 in both."""
    hdr = np.zeros(256, dtype="<i4")
    hdr[:17] = [CKPT_MAGIC, c.version, c.V, c.L, c.H, c.C, c.F, c.w, int(c.softmax), c.neg, c.pos,
                int(c.rope), c.theta, T, steps, 0,            # [15] = 0: parameters only
                c.bos if c.version >= 2 else 0]
    data = bytearray(hdr.tobytes())
    for name in PARAM_NAMES:
        data += p[name].detach().to(torch.float32).numpy().astype("<f4").tobytes()
    if c.version >= 2:
        struct.pack_into("<I", data, CKPT_CRC_OFFSET, checkpoint_crc(data))
    return bytes(data)


def write_checkpoint(path, c, p, T, steps):
    with open(path, "wb") as f:
        f.write(checkpoint_bytes(c, p, T, steps))


def read_with_header(path, kind, what, magic, versions):
    """-> (file bytes, int32 header of 256) after checking the magic and the version."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        die(f"cannot read {kind} {path}: {e.strerror}")
    if len(data) < HEADER_BYTES: die(f"{path}: too small for a {kind} header")
    hdr = np.frombuffer(data[:HEADER_BYTES], dtype="<i4")
    if hdr[0] != magic: die(f"{path}: bad magic (not {what})")
    if hdr[1] not in versions: die(f"{path}: unsupported {kind} version {hdr[1]}")
    return data, hdr


def read_checkpoint(path):
    """-> (Config, dict of float32 params, header). An optimizer/trainer tail (header[15]=1) is skipped.
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
    return c, p, hdr


def read_shard(path, V):
    data, hdr = read_with_header(path, "shard", "a token shard", SHARD_MAGIC, (SHARD_VERSION,))
    n = int(hdr[2])
    if n < 0 or len(data) != HEADER_BYTES + 2 * n: die(f"{path}: header says {n} tokens, file size is {len(data)}")
    tok = np.frombuffer(data, dtype="<u2", count=n, offset=HEADER_BYTES)
    if n and int(tok.max()) >= V: die(f"{path}: token {int(tok.max())} >= vocab {V}")
    return torch.from_numpy(tok.astype(np.int64))


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


class Loader:
    """Spec section 5: contiguous batches from a cursor at 0; advance by B*T; wrap to 0 when
    fewer than B*T+1 tokens remain after the cursor. The start token changes what a batch
    holds (see sequences), not where batches start."""
    def __init__(self, tokens, B, T, what, bos=-1):
        if len(tokens) < B * T + 1: die(f"{what}: {len(tokens)} tokens, need at least B*T+1 = {B * T + 1}")
        self.tokens, self.B, self.T, self.bos, self.pos = tokens, B, T, bos, 0

    def next(self):
        B, T = self.B, self.T
        x, y = sequences(self.tokens[self.pos:self.pos + B * T + 1], B, T, self.bos)
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


def make_optimizer(p, lr, wd, betas=(0.9, 0.95), eps=1e-8):
    decay = [p[n] for n in PARAM_NAMES if n not in NO_DECAY]       # every tensor with >= 2 dims
    no_decay = [p[n] for n in PARAM_NAMES if n in NO_DECAY]        # RMSNorm gains
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps, foreach=False)


def train_step(p, c, opt, x, y, lr_s, clip, block=256):
    """One step: loss and grads at the current params, clip, AdamW at lr_s.
    Returns (loss before the update, grad norm before clipping, clipping active)."""
    for g in opt.param_groups: g["lr"] = lr_s
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(forward(p, c, x, block=block), y)
    loss.backward()
    plist = [p[n] for n in PARAM_NAMES]
    if clip > 0:   # grads *= clip/(norm+1e-6) if that is < 1
        norm = torch.nn.utils.clip_grad_norm_(plist, clip).item()
    else:
        norm = torch.norm(torch.stack([t.grad.norm() for t in plist])).item()
    opt.step()
    return loss.item(), norm, clip > 0 and clip / (norm + 1e-6) < 1.0


def leaf(p, dtype):
    return {n: t.detach().to(dtype).clone().requires_grad_(True) for n, t in p.items()}


def eval_chunks(tokens, E, max_chunks):
    """Spec section 5: K = min(max_chunks, floor((N-1)/E)) (max_chunks 0: no limit), also with a start token."""
    K = (len(tokens) - 1) // E
    return min(K, max_chunks) if max_chunks > 0 else K


@torch.no_grad()
def evaluate(p, c, tokens, E, W, max_chunks=0):
    """Spec section 5: K chunks of E (see eval_chunks), each on its own (positions 0..E-1) with
    window W; chunk c is t[cE .. cE+E) shifted by one, or with a start token inputs
    [bos, t[cE] .. t[cE+E-2]] and targets t[cE .. cE+E). -> (mean loss over K*E predictions, K)."""
    K = eval_chunks(tokens, E, max_chunks)
    if K < 1: die(f"eval shard has {len(tokens)} tokens, too few for one chunk of {E}")
    x, y = sequences(tokens[:K * E + 1], K, E, c.bos)
    nb = max(1, (1 << 16) // E)          # chunks per forward, to bound memory
    total = 0.0
    for i in range(0, K, nb):
        total += loss_fn(forward(p, c, x[i:i + nb], window=W), y[i:i + nb], reduction="sum").item()
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
            l, norm, active = train_step(p, c, opt, x, y, lr_at(s, S_LR, S_WARMUP, S_STEPS, S_MINLR), clip)
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
    print("self test passed" if ok else "self test FAILED")
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

def main():
    ap = argparse.ArgumentParser(description="PyTorch reference for train_swat.c (see dev/README.md)")
    a = ap.add_argument
    a("--train"); a("--val"); a("--init"); a("--save")
    a("--batch", type=int, default=8); a("--seq", type=int, default=256)
    a("--window", type=int); a("--layers", type=int); a("--heads", type=int); a("--dim", type=int)
    a("--ffn", type=int); a("--vocab", type=int); a("--attn", choices=["sigmoid", "softmax"])
    a("--alibi"); a("--rope", choices=["on", "off"]); a("--rope-theta", type=int)
    a("--lr", type=float, default=1e-3); a("--min-lr-ratio", type=float, default=0.1)
    a("--steps", type=int, default=100); a("--warmup", type=int, default=10)
    a("--wd", type=float, default=0.1); a("--clip", type=float, default=1.0)
    a("--seed", type=int, default=1337); a("--dtype", choices=["float32", "float64"], default="float32")
    a("--threads", type=int, default=os.cpu_count())
    a("--val-every", type=int, default=0, help="val loss every N steps (0: only at the end)")
    a("--val-batches", type=int, default=4, help="val loss = mean over the first N B x T batches of --val")
    a("--bos", type=int, help="start token id (training; -1 = none; with --init it comes from the checkpoint)")
    a("--eval"); a("--eval-window", type=int, help="default: the model's window")
    a("--eval-len", type=int, help="default: the checkpoint's training length header[13] (256 if 0), else --seq")
    a("--eval-chunks", type=int, default=0, help="max chunks, 0 = all")
    a("--bench-steps", type=int, default=0)
    a("--attn-block", type=int, default=256,
      help="queries per attention block in training (0: one block = the usual masked T x T attention)")
    a("--write-states"); a("--self-test", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, args.threads))

    if args.self_test: sys.exit(0 if self_test() else 1)
    if args.write_states: return write_states(args.write_states)

    # model config: from the checkpoint if --init (shape flags must then agree), else from flags
    if args.init:
        c, p32, ihdr = read_checkpoint(args.init)
        for flag, field in [("vocab", "V"), ("layers", "L"), ("heads", "H"), ("dim", "C"), ("ffn", "F")]:
            if getattr(args, flag) is not None and getattr(args, flag) != getattr(c, field):
                die(f"--{flag} {getattr(args, flag)} does not match the checkpoint ({getattr(c, field)})")
        if args.bos is not None and args.bos != c.bos:
            die(f"--bos {args.bos} does not match the checkpoint's start token "
                f"({c.bos if c.bos >= 0 else 'none'}{', a version 1 file' if c.version == 1 else ''})")
        if c.version == 1:
            print(f"{args.init}: version 1 checkpoint, read as written (ALiBi slopes 2^-k, no start token)"
                  + ("; --save writes version 1 again, so that the model keeps its meaning" if args.save else ""))
    else:
        c = Config()
        for flag, field in [("vocab", "V"), ("layers", "L"), ("heads", "H"), ("dim", "C"), ("ffn", "F")]:
            if getattr(args, flag) is not None: setattr(c, field, getattr(args, flag))
        c.neg = c.pos = c.H // 2
        if args.bos is not None: c.bos = args.bos
    # non-shape settings may be changed by flags also with --init
    if args.window is not None: c.w = args.window
    if args.attn: c.softmax = args.attn == "softmax"
    if args.rope: c.rope = args.rope == "on"
    if args.rope_theta is not None: c.theta = args.rope_theta
    if args.alibi:
        try: c.neg, c.pos = (int(v) for v in args.alibi.split(":"))
        except ValueError: die(f"--alibi wants NEG:POS, got {args.alibi}")
    c.check()
    if not args.init:
        p32 = init_params(c, torch.Generator().manual_seed(args.seed))

    if args.eval:   # evaluation in float64; E and W default as in train_swat.c
        toks = read_shard(args.eval, c.V)
        E = args.eval_len if args.eval_len is not None else (
            (int(ihdr[13]) if ihdr[13] > 0 else 256) if args.init else args.seq)
        W = args.eval_window if args.eval_window is not None else c.w
        if E < 1 or W < 1: die("--eval-len and --eval-window must be >= 1")
        t0 = time.time()
        loss, K = evaluate(leaf(p32, torch.float64), c, toks, E, W, args.eval_chunks)
        print(f"eval: {K} chunks of {E} tokens, window {W}, {time.time() - t0:.1f}s")
        print(f"eval_loss {loss:.8f}")
        return

    B, T = args.batch, args.seq
    if B < 1 or T < 1: die("--batch and --seq must be >= 1")
    if args.steps < 0 or args.warmup < 0 or args.bench_steps < 0: die("--steps, --warmup, --bench-steps must be >= 0")
    bench = args.bench_steps > 0
    if args.attn_block < 0: die("--attn-block must be >= 0")
    block = args.attn_block or T
    dtype = torch.float32 if bench else getattr(torch, args.dtype)
    if args.train:
        train = read_shard(args.train, c.V)
    elif bench:
        train = torch.randint(0, c.V, (B * T * 4 + 1,), generator=torch.Generator().manual_seed(args.seed))
    else:
        die("nothing to do: give --train, --eval, --bench-steps, --write-states or --self-test")
    loader = Loader(train, B, T, "train shard", c.bos)
    val = read_shard(args.val, c.V) if args.val else None
    p = leaf(p32, dtype)
    opt = make_optimizer(p, args.lr, args.wd)
    print(f"model V {c.V} L {c.L} H {c.H} C {c.C} F {c.F} w {c.w} attn {'softmax' if c.softmax else 'sigmoid'} "
          f"alibi {c.neg}:{c.pos} rope {'on' if c.rope else 'off'} theta {c.theta} "
          f"bos {c.bos if c.bos >= 0 else 'none'} version {c.version} params {num_params(c)} dtype {dtype}")

    def val_loss():   # the first --val-batches batches of the val shard, training window
        vl = Loader(val, B, T, "val shard", c.bos)
        with torch.no_grad():
            return sum(loss_fn(forward(p, c, xb), yb).item()
                       for xb, yb in (vl.next() for _ in range(args.val_batches))) / args.val_batches

    if bench:
        steps = args.bench_steps
        sched = lambda s: lr_at(s, args.lr, args.warmup, steps + 1, args.min_lr_ratio)
        train_step(p, c, opt, *loader.next(), sched(0), args.clip, block)  # warm-up step, not timed
        t0 = time.perf_counter()
        for s in range(steps):
            train_step(p, c, opt, *loader.next(), sched(s + 1), args.clip, block)
        dt = time.perf_counter() - t0
        print(f"bench tokens_per_s {steps * B * T / dt:.1f} ms_per_step {1000 * dt / steps:.3f}")
        return

    for s in range(args.steps):
        lr_s = lr_at(s, args.lr, args.warmup, args.steps, args.min_lr_ratio)
        loss, norm, _ = train_step(p, c, opt, *loader.next(), lr_s, args.clip, block)
        print(f"step {s + 1}/{args.steps} loss {loss:.6f} lr {lr_s:.6e} norm {norm:.4f}")
        if val is not None and args.val_every > 0 and (s + 1) % args.val_every == 0 and s + 1 < args.steps:
            print(f"val_loss {val_loss():.6f}")
    if val is not None: print(f"val_loss {val_loss():.6f}")
    if args.save:
        write_checkpoint(args.save, c, p, T, args.steps)
        print(f"saved {args.save} (version {c.version})")


if __name__ == "__main__":
    main()
