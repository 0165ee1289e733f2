"""
Tests of the retention baseline dev/retnet.py (run by tests/retnet.sh, part of make test), in
float64 on random weights: the recurrent and chunked forms equal the parallel form (1e-5, in
practice ~1e-15), also across a stream's blocks; the gradient of every tensor equals central
finite differences at a few elements; the initialisation, the parameter counts and the state
sizes of doc/linear.md. Prints one line per check and "N passed, M failed".
"""
import math, os, sys
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import retnet as rn
import train_swat as ts

passed = failed = 0


def check(what, good):
    global passed, failed
    passed, failed = passed + bool(good), failed + (not good)
    print(f"{'ok' if good else 'FAIL'} - {what}")


def leaf(p):
    return {n: t.detach().double().clone().requires_grad_(True) for n, t in p.items()}


def random_model(gate, rope, seed=5):
    c = rn.RetConfig(V=13, L=2, H=3, C=12, F=20, gate=gate, rope=rope)
    gen = torch.Generator().manual_seed(seed)
    p = {n: (1.0 + 0.1 * torch.randn(s, generator=gen, dtype=torch.float64)) if n in rn.NO_DECAY
         else 0.3 * torch.randn(s, generator=gen, dtype=torch.float64)
         for n, s in rn.param_shapes(c).items()}
    x = torch.randint(0, c.V, (2, 23), generator=gen)
    y = torch.randint(0, c.V, (2, 23), generator=gen)
    return c, leaf(p), x, y


def test_forms():
    for gate, rope in ((True, True), (False, False)):
        c, p, x, _ = random_model(gate, rope)
        with torch.no_grad():
            par = rn.forward(p, c, x, "parallel")
            rec = rn.forward(p, c, x, "recurrent")
            chk = rn.forward(p, c, x, "chunked", chunk=5)
            # a stream: positions 0..10 then 11..22 with the state carried between the blocks
            state = [None] * c.L
            a = rn.forward(p, c, x[:, :11], "recurrent", state=state, start=0)
            b = rn.forward(p, c, x[:, 11:], "chunked", chunk=4, state=state, start=11)
        tag = f"gate {'on' if gate else 'off'}, rope {'on' if rope else 'off'}"
        d1, d2 = (rec - par).abs().max().item(), (chk - par).abs().max().item()
        d3 = (torch.cat((a, b), 1) - par).abs().max().item()
        check(f"recurrent form == parallel form, logits max diff {d1:.1e} < 1e-5 ({tag})",
              d1 < 1e-5)
        check(f"chunked form (chunks of 5) == parallel form, max diff {d2:.1e} ({tag})", d2 < 1e-5)
        check(f"stream in two blocks (recurrent, then chunked with the state) == parallel, "
              f"max diff {d3:.1e} ({tag})", d3 < 1e-5)
    # the retention alone, against the definition written out as sums
    gen = torch.Generator().manual_seed(9)
    q, k, v = (torch.randn(1, 2, 7, 3, generator=gen, dtype=torch.float64) for _ in range(3))
    gam = [0.9, 0.5]
    o = rn.retention_parallel(q, k, v, gam)
    want = torch.zeros_like(o)
    for h in range(2):
        for m in range(7):
            for n in range(m + 1):
                want[0, h, m] += gam[h] ** (m - n) * (q[0, h, m] @ k[0, h, n]) * v[0, h, n]
    check("parallel form == sum_n<=m gamma^(m-n) (q_m.k_n) v_n", (o - want).abs().max() < 1e-12)


def central(p, c, x, y, t, j, h):
    """(loss(t_j + h) - loss(t_j - h)) / 2h"""
    with torch.no_grad():
        flat = t.view(-1)
        old = flat[j].item()
        flat[j] = old + h; lp = rn.loss_fn(rn.forward(p, c, x), y).item()
        flat[j] = old - h; lm = rn.loss_fn(rn.forward(p, c, x), y).item()
        flat[j] = old
    return (lp - lm) / (2 * h)


def test_gradient():
    for gate in (True, False):
        c, p, x, y = random_model(gate, True, seed=11)
        rn.loss_fn(rn.forward(p, c, x), y).backward()
        gen = torch.Generator().manual_seed(3)
        worst, names = 0.0, []
        for name, t in p.items():
            for j in torch.randint(0, t.numel(), (3,), generator=gen).tolist():
                # two central differences, extrapolated (Richardson), with small steps: the
                # per-head norm of an output near 0 (position 0: (q_0.k_0) v_0) bends the
                # loss within ~sqrt(GN_EPS), so steps of 1e-4 err by 1e-2 (h^2, measured)
                fd = (4 * central(p, c, x, y, t, j, 1e-6) - central(p, c, x, y, t, j, 2e-6)) / 3
                ag = t.grad.view(-1)[j].item()
                err = abs(fd - ag) / max(1e-3, abs(fd))
                worst = max(worst, err)
                if err > 1e-6: names.append(name)
        check(f"gradient == central differences (extrapolated), 3 elements of each of the "
              f"{len(p)} tensors (gate {'on' if gate else 'off'}), worst rel err {worst:.1e}"
              + (f"; bad: {sorted(set(names))}" if names else ""), worst < 1e-6)


def test_sizes():
    # the models of doc/linear.md: equal parameters with SWAT through --ffn
    lm = rn.RetConfig(L=4, H=6, C=144, F=336)
    swat = ts.Config(L=4, H=6, C=144, F=384, w=32)
    check(f"LM models: retention (gate, F 336) has SWAT's (F 384) parameters: "
          f"{rn.num_params(lm)} == {ts.num_params(swat)}", rn.num_params(lm) == ts.num_params(swat))
    check("state per layer: retention C*D = 3456, SWAT 2*w*C = 9216 (w = 32, C = 144, H = 6)",
          rn.state_floats(lm) == 3456 and rn.state_floats(lm, 32) == 9216)
    rc = rn.RetConfig(L=2, H=4, C=64, F=155)
    check("recall models' state per layer: retention C*D = 1024, SWAT 2*w*C = 2048 (w = 16), "
          "full attention 2*128*C = 16384 at position 128",
          rn.state_floats(rc) == 1024 and rn.state_floats(rc, 16) == 2048
          and rn.state_floats(rc, 128) == 16384)
    sc = ts.Config(L=2, H=4, C=64, F=176, w=16)
    check(f"recall models: retention {rn.num_params(rc)} vs SWAT {ts.num_params(sc)} parameters "
          "(64 more per layer: 3*64*155 + 64*64 vs 3*64*176)",
          rn.num_params(rc) - ts.num_params(sc) == 2 * 64)
    check("decays 1 - 2^(-5-h): 0.96875, 0.984375, 0.9921875",
          rn.decays(3) == [0.96875, 0.984375, 0.9921875])
    # the initialisation draws as train_swat's for the tensors both models have
    c = rn.RetConfig(V=11, L=2, H=4, C=16, F=24, gate=False)
    a, b = rn.init_params(c, 7), ts.init_params_splitmix(ts.Config(V=11, L=2, H=4, C=16, F=24), 7)
    check("init without the gate == train_swat's param_init (same seed, same tensors)",
          all(torch.equal(a[n], b[n]) for n in ts.PARAM_NAMES))
    g = rn.init_params(rn.RetConfig(V=11, L=2, H=4, C=16, F=24), 7)["wo"]
    check("init std: wo is 0.02/sqrt(2L)", abs(g.std().item() - 0.01) < 0.002)


def test_swat_stream():
    """dev/linear.py's SWAT stream (the throughput measurement) == dev/train_swat.py's forward"""
    import linear
    for sm in (False, True):
        c = ts.Config(V=13, L=2, H=4, C=16, F=20, w=5, softmax=sm, neg=2, pos=2)
        gen = torch.Generator().manual_seed(21)
        p = leaf(ts.init_params(c, gen, 0.3, 0.1))
        x = torch.randint(0, c.V, (1, 19), generator=gen)
        with torch.no_grad():
            want = ts.forward(p, c, x)
            cache = [None] * c.L
            got = [linear.swat_block(p, c, x[:, :7], cache, 0)]
            got += [linear.swat_block(p, c, x[:, t:t + 1], cache, t) for t in range(7, 12)]
            got.append(linear.swat_block(p, c, x[:, 12:], cache, 12))
        d = (torch.cat(got, 1) - want).abs().max().item()
        held = sum(t.shape[2] for kv in cache for t in kv)
        check(f"SWAT stream (a block, 5 single tokens, a block) == forward with window 5 "
              f"({'softmax' if sm else 'sigmoid'}), max diff {d:.1e}; it holds w-1 keys and "
              f"values per layer", d < 1e-12 and held == 2 * c.L * (c.w - 1))


def main():
    torch.set_num_threads(1)
    test_forms()
    test_gradient()
    test_sizes()
    test_swat_stream()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
