/*
 * test_swat.c: the test suite of train_swat.c.
 *
 *   gcc -std=c11 -O2 -fopenmp -DTESTING -o test_swat test_swat.c -lm
 *   gcc -std=c11 -O3 -march=native -fopenmp -o train_swat train_swat.c -lm
 *   ./test_swat                       (from the repo root)
 *
 * Environment: SWAT_BIN (the trainer binary, default ./train_swat), SWAT_STATES (the PyTorch
 * debug states, default dev/states), SWAT_KEEP_TMP=1 keeps the scratch directory.
 *
 * What is checked, in order:
 *   1. a naive double-precision reference of every layer and of the whole model, written from
 *      doc/SPEC.md (full T x T masked attention), against the C layers and model_forward;
 *   2. gradients: every C backward against central finite differences of the reference,
 *      per layer (inputs and parameters) and for every parameter tensor of the whole model,
 *      over sigmoid/softmax x ALiBi 2:2, 4:0, 0:4, 0:0, 1:2 x RoPE on/off x w<T, w=T, w>T, w=1;
 *   3. the PyTorch debug states of dev/train_swat.py (logits, loss, gradients, 10 AdamW steps);
 *   4. checkpoints, evaluation, ring-buffer inference, streaming evaluation, LR schedule,
 *      AdamW, the batch loader, thread-count determinism, a short training run;
 *   5. the trainer binary as a subprocess: bad inputs (one line on stderr, non-zero exit) and
 *      the happy paths (--steps 0 --save, a 3-step run with --val, --eval and --stream against
 *      evaluate() in-process, one AdamW step from --init, greedy --generate, and an exact
 *      --stop-after/--resume).
 *
 * Every check prints one line, "ok - name (detail)", "FAIL - name (detail)" or
 * "SKIPPED - name (reason)"; the last line is "N passed, M failed[, K skipped]" and the exit
 * status is non-zero iff something failed.
 */
#ifndef TESTING
#define TESTING
#endif
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the harness (defined before the include: die() in train_swat.c reports through it) -- */

static int tests_passed, tests_failed, tests_skipped;

static void print_summary(void) {
    if (tests_skipped) printf("%d passed, %d failed, %d skipped\n", tests_passed, tests_failed, tests_skipped);
    else printf("%d passed, %d failed\n", tests_passed, tests_failed);
    fflush(stdout);
}

/* An unexpected die() inside the trainer's code (a bug, or a broken test file) is a failure:
 * report it as one and still end with the summary line. */
static void test_die(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("FAIL - unexpected die() in train_swat.c, aborting the suite (%s)\n", msg);
    tests_failed++;
    print_summary();
    exit(1);
}
#define SWAT_DIE_HOOK test_die

#include "train_swat.c"

#include <ctype.h>
#include <dirent.h>
#include <sys/wait.h>

static void check_result(int ok, const char *name, const char *fmt, ...) {
    char detail[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    printf("%s - %s (%s)\n", ok ? "ok" : "FAIL", name, detail);
    fflush(stdout);
    if (ok) tests_passed++; else tests_failed++;
}
#define CHECK(cond, name, ...) check_result(!!(cond), (name), __VA_ARGS__)

static void skip(const char *name, const char *fmt, ...) {
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    printf("SKIPPED - %s (%s)\n", name, detail);
    fflush(stdout);
    tests_skipped++;
}

/* printf into one of 16 rotating buffers: for check names and arguments used at once */
static const char *S(const char *fmt, ...) {
    static char bufs[16][4096];
    static int next;
    char *b = bufs[next++ % 16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof bufs[0], fmt, ap);
    va_end(ap);
    return b;
}

/* The worst error seen per category, printed at the end. */
enum { E_FWD_LAYER, E_FWD_MODEL, E_FD_LAYER, E_FD_MODEL, E_PT_LOGITS, E_PT_LOSS, E_PT_GRADS, E_PT_LOSSES,
       E_PT_PARAMS, E_EVAL, E_INFER, E_STREAM, E_ADAMW, NUM_E };
static const char *err_names[NUM_E] = {
    "layer forward vs reference (rel. to max)", "model forward vs reference (logits, loss)",
    "layer backward vs finite differences", "model gradients vs finite differences",
    "PyTorch logits", "PyTorch initial loss (relative)", "PyTorch gradients (per tensor)",
    "PyTorch 10 losses (absolute)", "PyTorch params after 10 AdamW steps", "evaluate() vs reference",
    "ring-buffer inference vs parallel forward", "evaluate_stream vs evaluate (relative)",
    "AdamW vs double hand computation"};
static double worst[NUM_E];
static int measured[NUM_E];
static double note(int cat, double e) {
    measured[cat] = 1;
    if (!(e <= worst[cat])) worst[cat] = e;
    return e;
}

/* ---- small numeric helpers -------------------------------------------------------------- */

static double max_abs_d(const double *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

/* max|a - b| / max|b|: the error relative to the tensor's scale, so that elements near zero
 * do not blow it up. When b is all zeros, a must be (almost) all zeros: the absolute error is
 * returned, so it has to be below the same threshold. NaN compares as a huge error. */
static double rel_err_fd(const float *a, const double *b, size_t n) {
    double num = 0.0, den = max_abs_d(b, n);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= num)) num = isnan(d) ? INFINITY : d;
    }
    return den > 1e-30 ? num / den : num;
}
static double rel_err_ff(const float *a, const float *b, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= num)) num = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return den > 1e-30 ? num / den : num;
}

static double *to_double(const float *a, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = a[i];
    return d;
}
static float *falloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static double *dalloc(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

/* The tests' own generator (splitmix64 + Box-Muller), independent of the trainer's. */
static uint64_t trng_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double trng_unif(uint64_t *s) { return (trng_u64(s) >> 11) * 0x1.0p-53; }
static double trng_normal(uint64_t *s) {
    double u1 = trng_unif(s), u2 = trng_unif(s);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}
static int trng_int(uint64_t *s, int n) { return (int)(trng_u64(s) % (uint64_t)n); }
static float *rand_floats(size_t n, double std, uint64_t *s) {
    float *a = falloc(n);
    for (size_t i = 0; i < n; i++) a[i] = (float)(std * trng_normal(s));
    return a;
}

/* ========================================================================================== */
/* 1. the reference: naive, double precision, straight from doc/SPEC.md (forward only)         */
/* ========================================================================================== */

/* Spec section 3: the tensors in checkpoint order and their shapes. */
enum { R_WTE, R_ATTN_NORM, R_WQ, R_WK, R_WV, R_WO, R_MLP_NORM, R_WGATE, R_WUP, R_WDOWN, R_FINAL_NORM,
       R_LM_HEAD, R_NT };
static const char *ref_names[R_NT] = {"wte", "attn_norm", "wq", "wk", "wv", "wo", "mlp_norm",
                                      "w_gate", "w_up", "w_down", "final_norm", "lm_head"};
typedef struct { size_t off[R_NT], size[R_NT], total; } RefLayout;

static RefLayout ref_layout(const ModelConfig *c) {
    size_t V = c->V, L = c->L, C = c->C, F = c->F;
    RefLayout lo;
    lo.size[R_WTE] = V * C;
    lo.size[R_ATTN_NORM] = L * C;
    lo.size[R_WQ] = lo.size[R_WK] = lo.size[R_WV] = lo.size[R_WO] = L * C * C;
    lo.size[R_MLP_NORM] = L * C;
    lo.size[R_WGATE] = lo.size[R_WUP] = L * F * C;
    lo.size[R_WDOWN] = L * C * F;
    lo.size[R_FINAL_NORM] = C;
    lo.size[R_LM_HEAD] = V * C;
    lo.total = 0;
    for (int t = 0; t < R_NT; t++) { lo.off[t] = lo.total; lo.total += lo.size[t]; }
    return lo;
}
static int ref_is_gain(int t) { return t == R_ATTN_NORM || t == R_MLP_NORM || t == R_FINAL_NORM; }

/* y (N, OUT) = x (N, IN) W^T, W stored [out, in] */
static void ref_linear(double *y, const double *x, const double *W, int N, int IN, int OUT) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            double s = 0.0;
            for (int i = 0; i < IN; i++) s += x[(long)n * IN + i] * W[(long)o * IN + i];
            y[(long)n * OUT + o] = s;
        }
}

/* RMSNorm(x; g) = x / sqrt(mean(x^2) + 1e-5) * g over the C channels */
static void ref_rmsnorm(double *y, const double *x, const double *g, int N, int C) {
    for (int n = 0; n < N; n++) {
        double ms = 0.0;
        for (int c = 0; c < C; c++) ms += x[(long)n * C + c] * x[(long)n * C + c];
        ms /= C;
        double r = 1.0 / sqrt(ms + 1e-5);
        for (int c = 0; c < C; c++) y[(long)n * C + c] = x[(long)n * C + c] * r * g[c];
    }
}

/* RoPE on (B, T, C) split in H heads of D: pair (x[2i], x[2i+1]) at position p = pos0 + t is
 * rotated by a = p * theta^(-2i/D). */
static void ref_rope(double *x, int B, int T, int C, int H, double theta, long pos0) {
    int D = C / H;
    double *cs = dalloc((size_t)T * D / 2 + 1), *sn = dalloc((size_t)T * D / 2 + 1);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D / 2; i++) {
            double a = (double)(pos0 + t) * pow(theta, -2.0 * i / D);
            cs[t * (D / 2) + i] = cos(a);
            sn[t * (D / 2) + i] = sin(a);
        }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < D / 2; i++) {
                    double *v = x + ((long)b * T + t) * C + h * D, c = cs[t * (D / 2) + i], s = sn[t * (D / 2) + i];
                    double x0 = v[2 * i], x1 = v[2 * i + 1];
                    v[2 * i] = x0 * c - x1 * s;
                    v[2 * i + 1] = x0 * s + x1 * c;
                }
    free(cs); free(sn);
}

/* Balanced ALiBi NEG:POS: the k-th head of each group (k = 1, 2, ...) has magnitude
 * 2^(-8k/H) (checkpoint version 2) or 2^-k (version 1); heads 0..NEG-1 negative, heads
 * NEG..NEG+POS-1 positive, the rest 0. */
static void ref_slopes(double *s, const ModelConfig *c) {
    for (int h = 0; h < c->H; h++) {
        int k = h < c->alibi_neg ? h + 1 : h - c->alibi_neg + 1;
        double mag = c->version == 1 ? pow(2.0, -k) : pow(2.0, -8.0 * k / c->H);
        s[h] = h < c->alibi_neg ? -mag : h < c->alibi_neg + c->alibi_pos ? mag : 0.0;
    }
}

/* SWAT attention as full masked T x T attention: key n is visible to query m iff
 * m-W+1 <= n <= m; s = q.k/sqrt(D) + slope*(m-n); sigmoid: a = sigmoid(s) (no normalisation),
 * softmax: a = softmax of s over the visible keys. weights (B, H, T, T) may be NULL. */
static void ref_attention(double *out, double *weights, const double *q, const double *k, const double *v,
                          const double *slopes, int B, int T, int C, int H, int W, int softmax) {
    int D = C / H;
    double *s = dalloc(T), *a = dalloc(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int m = 0; m < T; m++) {
                const double *qm = q + ((long)b * T + m) * C + h * D;
                double mx = -INFINITY;
                for (int n = 0; n < T; n++) {
                    const double *kn = k + ((long)b * T + n) * C + h * D;
                    double dot = 0.0;
                    for (int i = 0; i < D; i++) dot += qm[i] * kn[i];
                    s[n] = dot / sqrt((double)D) + slopes[h] * (m - n);
                    int visible = n <= m && n >= m - W + 1;
                    if (visible && s[n] > mx) mx = s[n];
                }
                double sum = 0.0;
                for (int n = 0; n < T; n++) {
                    int visible = n <= m && n >= m - W + 1;
                    if (!visible) a[n] = 0.0;
                    else if (softmax) { a[n] = exp(s[n] - mx); sum += a[n]; }
                    else a[n] = 1.0 / (1.0 + exp(-s[n]));
                }
                if (softmax) for (int n = 0; n < T; n++) a[n] /= sum;
                double *om = out + ((long)b * T + m) * C + h * D;
                for (int i = 0; i < D; i++) {
                    double acc = 0.0;
                    for (int n = 0; n < T; n++) acc += a[n] * v[((long)b * T + n) * C + h * D + i];
                    om[i] = acc;
                }
                if (weights) memcpy(weights + (((long)b * H + h) * T + m) * T, a, T * sizeof(double));
            }
    free(s); free(a);
}

/* SwiGLU: silu(gate) * up with silu(z) = z * sigmoid(z) */
static void ref_swiglu(double *y, const double *gate, const double *up, long n) {
    for (long i = 0; i < n; i++) y[i] = gate[i] / (1.0 + exp(-gate[i])) * up[i];
}

/* per-position -log softmax(logits)[target]; returns the mean */
static double ref_xent(const double *logits, const int *targets, int N, int V, double *losses) {
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const double *z = logits + (long)n * V;
        double mx = -INFINITY, sum = 0.0;
        for (int i = 0; i < V; i++) if (z[i] > mx) mx = z[i];
        for (int i = 0; i < V; i++) sum += exp(z[i] - mx);
        double l = log(sum) + mx - z[targets[n]];
        if (losses) losses[n] = l;
        total += l;
    }
    return total / N;
}

/* The whole model of spec section 2, run as stages over the residual stream x (N, C):
 * stage 0 is the embedding, stage 2l+1 the attention block of layer l, stage 2l+2 its MLP
 * block, stage 2L+1 the final norm, lm head and loss. ref_run() starts at `stage` from the
 * stream x_in entering it (ignored for stage 0); the finite differences use this to restart
 * from the layer a parameter belongs to. If `streams` is given, (2L+2, N, C), the stream
 * entering every stage is recorded. Returns the mean loss (0 without targets). */
static double ref_run(const ModelConfig *c, const double *P, int stage, const double *x_in, const int *in,
                      const int *tg, int B, int T, int W, double *streams, double *logits_out, double *losses_out) {
    RefLayout lo = ref_layout(c);
    int N = B * T, C = c->C, F = c->F, V = c->V, H = c->H, L = c->L;
    size_t NC = (size_t)N * C;
    double *x = dalloc(NC), *h = dalloc(NC), *q = dalloc(NC), *k = dalloc(NC), *v = dalloc(NC), *o = dalloc(NC),
           *tmp = dalloc(NC), *g = dalloc((size_t)N * F), *u = dalloc((size_t)N * F), *act = dalloc((size_t)N * F),
           *logits = dalloc((size_t)N * V), *slopes = dalloc(H);
    ref_slopes(slopes, c);
    if (stage == 0) {
        for (int n = 0; n < N; n++)
            for (int i = 0; i < C; i++) x[(long)n * C + i] = P[lo.off[R_WTE] + (size_t)in[n] * C + i];
        stage = 1;
    } else memcpy(x, x_in, NC * sizeof(double));
    for (; stage <= 2 * L; stage++) {
        int l = (stage - 1) / 2;
        size_t lC = (size_t)l * C, lCC = lC * C, lFC = (size_t)l * F * C;
        if (streams) memcpy(streams + stage * NC, x, NC * sizeof(double));
        if (stage % 2 == 1) { /* x = x + Attn(RMSNorm(x)) Wo^T */
            ref_rmsnorm(h, x, P + lo.off[R_ATTN_NORM] + lC, N, C);
            ref_linear(q, h, P + lo.off[R_WQ] + lCC, N, C, C);
            ref_linear(k, h, P + lo.off[R_WK] + lCC, N, C, C);
            ref_linear(v, h, P + lo.off[R_WV] + lCC, N, C, C);
            if (c->rope) {
                ref_rope(q, B, T, C, H, c->rope_theta, 0);
                ref_rope(k, B, T, C, H, c->rope_theta, 0);
            }
            ref_attention(o, NULL, q, k, v, slopes, B, T, C, H, W, c->attn == ATTN_SOFTMAX);
            ref_linear(tmp, o, P + lo.off[R_WO] + lCC, N, C, C);
        } else { /* x = x + (silu(h Wgate^T) * h Wup^T) Wdown^T with h = RMSNorm(x) */
            ref_rmsnorm(h, x, P + lo.off[R_MLP_NORM] + lC, N, C);
            ref_linear(g, h, P + lo.off[R_WGATE] + lFC, N, C, F);
            ref_linear(u, h, P + lo.off[R_WUP] + lFC, N, C, F);
            ref_swiglu(act, g, u, (long)N * F);
            ref_linear(tmp, act, P + lo.off[R_WDOWN] + lFC, N, F, C);
        }
        for (size_t i = 0; i < NC; i++) x[i] += tmp[i];
    }
    if (streams) memcpy(streams + (size_t)(2 * L + 1) * NC, x, NC * sizeof(double));
    ref_rmsnorm(h, x, P + lo.off[R_FINAL_NORM], N, C);
    ref_linear(logits, h, P + lo.off[R_LM_HEAD], N, C, V);
    double loss = tg ? ref_xent(logits, tg, N, V, losses_out) : 0.0;
    if (logits_out) memcpy(logits_out, logits, (size_t)N * V * sizeof(double));
    free(x); free(h); free(q); free(k); free(v); free(o); free(tmp); free(g); free(u); free(act);
    free(logits); free(slopes);
    return loss;
}

/* The model on B sequences of T tokens (positions 0..T-1 each) with window W. */
static double ref_forward(const ModelConfig *c, const double *P, const int *in, const int *tg, int B, int T,
                          int W, double *logits_out, double *losses_out) {
    return ref_run(c, P, 0, NULL, in, tg, B, T, W, NULL, logits_out, losses_out);
}

/* The first stage a parameter element influences. */
static int ref_stage_of(const ModelConfig *c, const RefLayout *lo, size_t i) {
    int t = 0;
    while (t + 1 < R_NT && i >= lo->off[t + 1]) t++;
    if (t == R_WTE) return 0;
    if (t == R_FINAL_NORM || t == R_LM_HEAD) return 2 * c->L + 1;
    int l = (int)((i - lo->off[t]) / (lo->size[t] / c->L));
    return t <= R_WO ? 2 * l + 1 : 2 * l + 2;
}

/* Spec section 5: K = min(max_chunks, floor((N-1)/E)) chunks, chunk c = t[cE .. cE+E) with
 * targets shifted by one, each on its own at positions 0..E-1 with window W; mean over K*E.
 * With a start token (c->bos >= 0, spec section 2): inputs [bos, t[cE] .. t[cE+E-2]], targets
 * t[cE .. cE+E). */
static double ref_evaluate(const ModelConfig *c, const double *P, const uint16_t *tok, long n, int E, int W,
                           long max_chunks) {
    long K = (n - 1) / E;
    if (max_chunks > 0 && max_chunks < K) K = max_chunks;
    int *in = calloc(E, sizeof(int)), *tg = calloc(E, sizeof(int));
    double total = 0.0;
    for (long ch = 0; ch < K; ch++) {
        for (int i = 0; i < E; i++) {
            in[i] = c->bos < 0 ? tok[ch * E + i] : i == 0 ? c->bos : tok[ch * E + i - 1];
            tg[i] = c->bos < 0 ? tok[ch * E + i + 1] : tok[ch * E + i];
        }
        total += E * ref_forward(c, P, in, tg, 1, E, W, NULL, NULL);
    }
    free(in); free(tg);
    return total / ((double)K * E);
}

/* ========================================================================================== */
/* finite differences                                                                         */
/* ========================================================================================== */

/* Central differences with h = 1e-6 on the double reference. The truncation error is
 * O(h^2 * f''') ~ 1e-12 and the rounding error ~ 1e-16*|f|/h ~ 1e-10, both far below the
 * float32 error (~1e-6 relative) of the C gradients being checked. */
#define FD_H 1e-6

typedef double (*ScalarFn)(void *ctx);
static void fd_grad(ScalarFn f, void *ctx, double *x, size_t n, double *grad) {
    for (size_t i = 0; i < n; i++) {
        double old = x[i];
        x[i] = old + FD_H; double fp = f(ctx);
        x[i] = old - FD_H; double fm = f(ctx);
        x[i] = old;
        grad[i] = (fp - fm) / (2 * FD_H);
    }
}

/* The threads for the finite differences: all of them (one parallel region, no barriers
 * inside); everything else runs on one thread, see main(). */
static int fd_threads = 1;

/* d loss / d every parameter of the reference model, all elements. A perturbed element only
 * changes the stages from its own on, so each evaluation restarts from the recorded stream. */
static void ref_fd_model_grads(const ModelConfig *c, const double *P, size_t np, const int *in, const int *tg,
                               int B, int T, int W, double *G) {
    RefLayout lo = ref_layout(c);
    size_t NC = (size_t)B * T * c->C;
    double *streams = dalloc((2 * c->L + 2) * NC);
    ref_run(c, P, 0, NULL, in, tg, B, T, W, streams, NULL, NULL);
    #pragma omp parallel num_threads(fd_threads)
    {
        double *Pl = dalloc(np);
        memcpy(Pl, P, np * sizeof(double));
        #pragma omp for schedule(dynamic, 16)
        for (long i = 0; i < (long)np; i++) {
            int st = ref_stage_of(c, &lo, i);
            const double *xs = streams + st * NC;
            Pl[i] = P[i] + FD_H;
            double fp = ref_run(c, Pl, st, xs, in, tg, B, T, W, NULL, NULL, NULL);
            Pl[i] = P[i] - FD_H;
            double fm = ref_run(c, Pl, st, xs, in, tg, B, T, W, NULL, NULL, NULL);
            Pl[i] = P[i];
            G[i] = (fp - fm) / (2 * FD_H);
        }
        free(Pl);
    }
    free(streams);
}

/* ========================================================================================== */
/* models for the tests                                                                       */
/* ========================================================================================== */

static ModelConfig make_config(int V, int L, int H, int C, int F, int w, int attn, int neg, int pos, int rope) {
    ModelConfig c = {.V = V, .L = L, .H = H, .C = C, .F = F, .window = w, .attn = attn, .alibi_neg = neg,
                     .alibi_pos = pos, .rope = rope, .rope_theta = 10000, .seq_len = 0, .bos = -1,
                     .version = CKPT_VERSION};
    return c;
}

static const char *config_desc(const ModelConfig *c, int w) {
    return S("%s %d:%d rope %s w=%d", c->attn == ATTN_SOFTMAX ? "softmax" : "sigmoid", c->alibi_neg, c->alibi_pos,
             c->rope ? "on" : "off", w);
}

/* A model whose attention is far from trivial: matrices N(0, std^2), gains 1 + 0.1 N(0,1). */
static void make_random_model(Model *m, const ModelConfig *c, double std, uint64_t seed) {
    model_create(m, c);
    RefLayout lo = ref_layout(c);
    uint64_t s = seed;
    for (int t = 0; t < R_NT; t++)
        for (size_t i = 0; i < lo.size[t]; i++)
            m->params[lo.off[t] + i] = (float)(ref_is_gain(t) ? 1.0 + 0.1 * trng_normal(&s) : std * trng_normal(&s));
}

static void random_tokens(int *t, int n, int V, uint64_t *s) {
    for (int i = 0; i < n; i++) t[i] = trng_int(s, V);
}
/* the same for a shard's uint16 tokens */
static void random_tokens16(uint16_t *t, long n, int V, uint64_t *s) {
    for (long i = 0; i < n; i++) t[i] = (uint16_t)trng_int(s, V);
}

/* ========================================================================================== */
/* 2. layers: forward vs the reference, backward vs finite differences, accumulation          */
/* ========================================================================================== */

/* Layer-level tolerances: forward 1e-5 of the output's scale (float32 sums of <= 300 terms
 * are good to ~1e-6); backward 1e-4 of the gradient's scale (float32 accumulations over
 * these tiny sizes give ~1e-6; 1e-4 leaves room while any real bug shows up as >1e-2). */
#define TOL_FWD 1e-5
#define TOL_GRAD 1e-4
#define TOL_ACC 1e-6

/* Calls a backward twice into zeroed buffers: the second call must double the first. */
static double doubled_err(const float *once, const float *twice, size_t n) {
    float *two = falloc(n);
    for (size_t i = 0; i < n; i++) two[i] = 2.0f * once[i];
    double e = rel_err_ff(twice, two, n);
    free(two);
    return e;
}

/* ---- matmul ---- */
typedef struct { int N, IN, OUT; double *x, *W, *R; } MatmulCtx;
static double matmul_loss(void *p) {
    MatmulCtx *c = p;
    double *y = dalloc((size_t)c->N * c->OUT), s = 0.0;
    ref_linear(y, c->x, c->W, c->N, c->IN, c->OUT);
    for (long i = 0; i < (long)c->N * c->OUT; i++) s += y[i] * c->R[i];
    free(y);
    return s;
}

/* Add the last model_forward's attention, every layer's band (train_swat.c adds a block's). */
static void sink_stats_add(SinkStats *st, const Model *m) {
    const Activations *a = &m->a;
    for (int l = 0; l < st->L; l++)
        sink_stats_add_band(st, l, a->layer[l].att, a->B, m->cfg.H, a->T, a->band, 0, a->band);
    st->queries += (long)a->B * (a->band > 1 ? a->band - 1 : 0);
}

static void test_matmul(int N, int IN, int OUT, int do_fd, uint64_t seed) {
    uint64_t s = seed;
    float *x = rand_floats((size_t)N * IN, 1.0, &s), *W = rand_floats((size_t)OUT * IN, 0.5, &s),
          *R = rand_floats((size_t)N * OUT, 1.0, &s), *y = falloc((size_t)N * OUT),
          *dx = falloc((size_t)N * IN), *dW = falloc((size_t)OUT * IN), *dx2 = falloc((size_t)N * IN),
          *dW2 = falloc((size_t)OUT * IN), *dx3 = falloc((size_t)N * IN);
    MatmulCtx c = {N, IN, OUT, to_double(x, (size_t)N * IN), to_double(W, (size_t)OUT * IN),
                   to_double(R, (size_t)N * OUT)};
    double *yr = dalloc((size_t)N * OUT);
    ref_linear(yr, c.x, c.W, N, IN, OUT);
    /* garbage in the output must be overwritten, not added to */
    for (long i = 0; i < (long)N * OUT; i++) y[i] = 1e6f;
    matmul_forward(y, x, W, N, IN, OUT);
    double e = note(E_FWD_LAYER, rel_err_fd(y, yr, (size_t)N * OUT));
    CHECK(e < TOL_FWD, S("matmul_forward %dx%d -> %d", N, IN, OUT), "max rel err %.2e", e);

    matmul_backward(dx, dW, R, x, W, N, IN, OUT, 1);
    double *gx = dalloc((size_t)N * IN), *gW = dalloc((size_t)OUT * IN);
    if (do_fd) {
        fd_grad(matmul_loss, &c, c.x, (size_t)N * IN, gx);
        fd_grad(matmul_loss, &c, c.W, (size_t)OUT * IN, gW);
    } else { /* exact gradients in double: dx = R W, dW = R^T x */
        for (int n = 0; n < N; n++)
            for (int i = 0; i < IN; i++) {
                double a = 0.0;
                for (int o = 0; o < OUT; o++) a += c.R[(long)n * OUT + o] * c.W[(long)o * IN + i];
                gx[(long)n * IN + i] = a;
            }
        for (int o = 0; o < OUT; o++)
            for (int i = 0; i < IN; i++) {
                double a = 0.0;
                for (int n = 0; n < N; n++) a += c.R[(long)n * OUT + o] * c.x[(long)n * IN + i];
                gW[(long)o * IN + i] = a;
            }
    }
    double ex = note(E_FD_LAYER, rel_err_fd(dx, gx, (size_t)N * IN));
    double eW = note(E_FD_LAYER, rel_err_fd(dW, gW, (size_t)OUT * IN));
    CHECK(ex < TOL_GRAD && eW < TOL_GRAD, S("matmul_backward %dx%d -> %d vs %s", N, IN, OUT, do_fd ? "finite differences" : "exact double"),
          "dinp %.2e, dW %.2e", ex, eW);
    /* accumulation: a second call adds the same again; NULL outputs are skipped */
    matmul_backward(dx, dW, R, x, W, N, IN, OUT, 1);
    memset(dx2, 0, (size_t)N * IN * 4); memset(dW2, 0, (size_t)OUT * IN * 4);
    matmul_backward(dx2, dW2, R, x, W, N, IN, OUT, 1);
    double a1 = doubled_err(dx2, dx, (size_t)N * IN), a2 = doubled_err(dW2, dW, (size_t)OUT * IN);
    matmul_backward(dx3, NULL, R, x, W, N, IN, OUT, 1);
    double a3 = rel_err_ff(dx3, dx2, (size_t)N * IN);
    CHECK(a1 < TOL_ACC && a2 < TOL_ACC && a3 == 0.0, S("matmul_backward %dx%d -> %d accumulates", N, IN, OUT),
          "2nd call doubles: dinp %.1e dW %.1e; dW=NULL leaves dinp identical: %.1e", a1, a2, a3);
    /* add = 0 overwrites dinp (garbage and all) and still adds into dW */
    for (long i = 0; i < (long)N * IN; i++) dx3[i] = 1e6f;
    memcpy(dW2, dW, (size_t)OUT * IN * 4);
    matmul_backward(dx3, dW2, R, x, W, N, IN, OUT, 0);
    double o1 = rel_err_ff(dx3, dx2, (size_t)N * IN), o2 = 0.0; /* dx2 = one call's dinp */
    for (long i = 0; i < (long)OUT * IN; i++) o2 = fmax(o2, fabs(dW2[i] - 1.5 * dW[i]) / (fabs(dW[i]) + 1e-6));
    CHECK(o1 < TOL_ACC && o2 < 1e-5, S("matmul_backward %dx%d -> %d with add = 0 overwrites dinp", N, IN, OUT),
          "dinp vs one call %.1e; dW still accumulates (3 calls vs 2) %.1e", o1, o2);
    free(x); free(W); free(R); free(y); free(dx); free(dW); free(dx2); free(dW2); free(dx3);
    free(c.x); free(c.W); free(c.R); free(yr); free(gx); free(gW);
}

/* ---- embedding ---- */
typedef struct { int N, C; const int *tok; double *wte, *R; } EmbCtx;
static double emb_loss(void *p) {
    EmbCtx *c = p;
    double s = 0.0;
    for (int n = 0; n < c->N; n++)
        for (int i = 0; i < c->C; i++) s += c->wte[(long)c->tok[n] * c->C + i] * c->R[(long)n * c->C + i];
    return s;
}

static void test_embedding(int C) {
    uint64_t s = 11 + C;
    int V = 7, N = 12, tok[12] = {3, 0, 3, 6, 1, 3, 0, 2, 2, 6, 3, 1}; /* repeats; token 4, 5 unused */
    float *wte = rand_floats((size_t)V * C, 1.0, &s), *R = rand_floats((size_t)N * C, 1.0, &s);
    float *out = falloc((size_t)N * C), *dwte = falloc((size_t)V * C), *dwte2 = falloc((size_t)V * C);
    embedding_forward(out, tok, wte, N, C);
    int same = 1;
    for (int n = 0; n < N; n++) same &= !memcmp(out + n * C, wte + tok[n] * C, C * 4);
    CHECK(same, S("embedding_forward C=%d", C), "rows are exact copies of wte[token]");
    EmbCtx c = {N, C, tok, to_double(wte, (size_t)V * C), to_double(R, (size_t)N * C)};
    double *g = dalloc((size_t)V * C);
    fd_grad(emb_loss, &c, c.wte, (size_t)V * C, g);
    embedding_backward(dwte, R, tok, N, C);
    double e = note(E_FD_LAYER, rel_err_fd(dwte, g, (size_t)V * C));
    int unused_zero = 1;
    for (int i = 0; i < C; i++) unused_zero &= dwte[4 * C + i] == 0.0f && dwte[5 * C + i] == 0.0f;
    CHECK(e < TOL_GRAD && unused_zero, S("embedding_backward C=%d vs finite differences", C), "dwte %.2e (repeated tokens summed; unused rows exactly 0)", e);
    embedding_backward(dwte2, R, tok, N, C);
    embedding_backward(dwte2, R, tok, N, C);
    double a = doubled_err(dwte, dwte2, (size_t)V * C);
    CHECK(a < TOL_ACC, S("embedding_backward C=%d accumulates", C), "2nd call doubles: %.1e", a);
    free(wte); free(R); free(out); free(dwte); free(dwte2); free(c.wte); free(c.R); free(g);
}

/* ---- RMSNorm ---- */
typedef struct { int N, C; double *x, *g, *R; } NormCtx;
static double norm_loss(void *p) {
    NormCtx *c = p;
    double *y = dalloc((size_t)c->N * c->C), s = 0.0;
    ref_rmsnorm(y, c->x, c->g, c->N, c->C);
    for (long i = 0; i < (long)c->N * c->C; i++) s += y[i] * c->R[i];
    free(y);
    return s;
}

static void test_rmsnorm(int N, int C) {
    uint64_t s = 12 + C;
    float *x = rand_floats((size_t)N * C, 1.0, &s), *g = falloc(C), *R = rand_floats((size_t)N * C, 1.0, &s);
    for (int i = 0; i < C; i++) g[i] = (float)(1.0 + 0.3 * trng_normal(&s));
    for (int i = 0; i < C; i++) x[2 * C + i] *= 1e-3f; /* a row where eps matters */
    float *y = falloc((size_t)N * C), *rstd = falloc(N), *dx = falloc((size_t)N * C), *dg = falloc(C),
          *dx2 = falloc((size_t)N * C), *dg2 = falloc(C);
    NormCtx c = {N, C, to_double(x, (size_t)N * C), to_double(g, C), to_double(R, (size_t)N * C)};
    double *yr = dalloc((size_t)N * C);
    ref_rmsnorm(yr, c.x, c.g, N, C);
    rmsnorm_forward(y, rstd, x, g, N, C);
    double e = note(E_FWD_LAYER, rel_err_fd(y, yr, (size_t)N * C));
    double er = 0.0;
    for (int n = 0; n < N; n++) {
        double ms = 0.0;
        for (int i = 0; i < C; i++) ms += c.x[n * C + i] * c.x[n * C + i];
        double r = 1.0 / sqrt(ms / C + 1e-5);
        if (fabs(rstd[n] - r) / r > er) er = fabs(rstd[n] - r) / r;
    }
    CHECK(e < TOL_FWD && er < TOL_FWD, S("rmsnorm_forward N=%d C=%d", N, C), "out %.2e, rstd %.2e", e, er);
    double *gx = dalloc((size_t)N * C), *gg = dalloc(C);
    fd_grad(norm_loss, &c, c.x, (size_t)N * C, gx);
    fd_grad(norm_loss, &c, c.g, C, gg);
    rmsnorm_backward(dx, dg, R, x, g, rstd, N, C);
    double ex = note(E_FD_LAYER, rel_err_fd(dx, gx, (size_t)N * C)), eg = note(E_FD_LAYER, rel_err_fd(dg, gg, C));
    CHECK(ex < TOL_GRAD && eg < TOL_GRAD, S("rmsnorm_backward N=%d C=%d vs finite differences", N, C), "dinp %.2e, dg %.2e", ex, eg);
    rmsnorm_backward(dx2, dg2, R, x, g, rstd, N, C);
    rmsnorm_backward(dx2, dg2, R, x, g, rstd, N, C);
    double a1 = doubled_err(dx, dx2, (size_t)N * C), a2 = doubled_err(dg, dg2, C);
    CHECK(a1 < TOL_ACC && a2 < TOL_ACC, S("rmsnorm_backward N=%d C=%d accumulates", N, C), "2nd call doubles: dinp %.1e, dg %.1e", a1, a2);
    free(x); free(g); free(R); free(y); free(rstd); free(dx); free(dg); free(dx2); free(dg2);
    free(c.x); free(c.g); free(c.R); free(yr); free(gx); free(gg);
}

/* ---- RoPE ---- */
typedef struct { int B, T, C, H; double theta, *x, *R; } RopeCtx;
static double rope_loss(void *p) {
    RopeCtx *c = p;
    size_t n = (size_t)c->B * c->T * c->C;
    double *y = dalloc(n), s = 0.0;
    memcpy(y, c->x, n * sizeof(double));
    ref_rope(y, c->B, c->T, c->C, c->H, c->theta, 0);
    for (size_t i = 0; i < n; i++) s += y[i] * c->R[i];
    free(y);
    return s;
}

static void test_rope(void) {
    uint64_t s = 13;
    int B = 2, T = 11, H = 3, C = 24, D = C / H;
    size_t n = (size_t)B * T * C;
    float *x = rand_floats(n, 1.0, &s), *R = rand_floats(n, 1.0, &s), *y = falloc(n), *dx = falloc(n);
    float *cs = falloc((size_t)T * D / 2), *sn = falloc((size_t)T * D / 2);
    rope_tables(cs, sn, T, D, 10000, 0);
    RopeCtx c = {B, T, C, H, 10000.0, to_double(x, n), to_double(R, n)};
    double *yr = dalloc(n);
    memcpy(yr, c.x, n * sizeof(double));
    ref_rope(yr, B, T, C, H, 10000.0, 0);
    memcpy(y, x, n * 4);
    rope_forward(y, cs, sn, B, T, C, H);
    double e = note(E_FWD_LAYER, rel_err_fd(y, yr, n));
    CHECK(e < TOL_FWD, "rope_forward (interleaved pairs, 3 heads of 8)", "max rel err %.2e", e);
    /* tables that start at a later position (used by the ring-buffer inference) */
    int P0 = 1000;
    float *cs2 = falloc((size_t)T * D / 2), *sn2 = falloc((size_t)T * D / 2);
    rope_tables(cs2, sn2, T, D, 500, P0);
    memcpy(yr, c.x, n * sizeof(double));
    ref_rope(yr, B, T, C, H, 500.0, P0);
    memcpy(y, x, n * 4);
    rope_forward(y, cs2, sn2, B, T, C, H);
    double e2 = note(E_FWD_LAYER, rel_err_fd(y, yr, n));
    CHECK(e2 < TOL_FWD, "rope_tables from position 1000, theta 500", "max rel err %.2e", e2);
    /* backward: rotates the gradient in place by -angle (it does not accumulate) */
    double *g = dalloc(n);
    fd_grad(rope_loss, &c, c.x, n, g);
    memcpy(dx, R, n * 4);
    rope_backward(dx, cs, sn, B, T, C, H);
    double eb = note(E_FD_LAYER, rel_err_fd(dx, g, n));
    CHECK(eb < TOL_GRAD, "rope_backward vs finite differences", "dinp %.2e (in-place rotation by -angle)", eb);
    free(x); free(R); free(y); free(dx); free(cs); free(sn); free(cs2); free(sn2); free(c.x); free(c.R);
    free(yr); free(g);
}

/* ---- attention ---- */
typedef struct { int B, T, C, H, W, softmax; double *slopes, *q, *k, *v, *R; } AttnCtx;
static double attn_loss(void *p) {
    AttnCtx *c = p;
    size_t n = (size_t)c->B * c->T * c->C;
    double *o = dalloc(n), s = 0.0;
    ref_attention(o, NULL, c->q, c->k, c->v, c->slopes, c->B, c->T, c->C, c->H, c->W, c->softmax);
    for (size_t i = 0; i < n; i++) s += o[i] * c->R[i];
    free(o);
    return s;
}

static void test_attention(int mode, int W) {
    uint64_t s = 14 + 7 * W + mode;
    int B = 2, T = 9, H = 4, C = 16, Wb = band_width(W, T);
    size_t n = (size_t)B * T * C, na = (size_t)B * H * T * Wb;
    const char *mname = mode == ATTN_SOFTMAX ? "softmax" : "sigmoid";
    ModelConfig cfg = make_config(10, 1, H, C, 8, W, mode, 1, 2, 1); /* slopes -1/2, +1/2, +1/4, 0 */
    float slopes[4];
    alibi_slopes(&cfg, slopes);
    float *q = rand_floats(n, 1.0, &s), *k = rand_floats(n, 1.0, &s), *v = rand_floats(n, 1.0, &s),
          *R = rand_floats(n, 1.0, &s), *o = falloc(n), *att = falloc(na), *dq = falloc(n), *dk = falloc(n),
          *dv = falloc(n), *dq2 = falloc(n), *dk2 = falloc(n), *dv2 = falloc(n);
    AttnCtx c = {B, T, C, H, W, mode == ATTN_SOFTMAX, to_double(slopes, 4), to_double(q, n), to_double(k, n),
                 to_double(v, n), to_double(R, n)};
    double *orf = dalloc(n), *wr = dalloc((size_t)B * H * T * T);
    ref_attention(orf, wr, c.q, c.k, c.v, c.slopes, B, T, C, H, W, c.softmax);
    for (size_t i = 0; i < na; i++) att[i] = 1e6f;
    attention_forward_ctx(o, att, q, k, v, slopes, B, T, 0, C, H, W, mode);
    double e = note(E_FWD_LAYER, rel_err_fd(o, orf, n));
    /* the saved band: att[b,h,m,d] is the weight of key m-d, 0 where m-d < 0 */
    double ea = 0.0;
    for (int bh = 0; bh < B * H; bh++)
        for (int m = 0; m < T; m++)
            for (int d = 0; d < Wb; d++) {
                double ref = m - d >= 0 ? wr[((long)bh * T + m) * T + m - d] : 0.0;
                double got = att[((long)bh * T + m) * Wb + d];
                if (fabs(got - ref) > ea) ea = fabs(got - ref);
            }
    note(E_FWD_LAYER, ea);
    CHECK(e < TOL_FWD && ea < TOL_FWD, S("attention_forward %s w=%d (T=%d)", mname, W, T), "out %.2e, band weights %.2e", e, ea);
    double *gq = dalloc(n), *gk = dalloc(n), *gv = dalloc(n);
    fd_grad(attn_loss, &c, c.q, n, gq);
    fd_grad(attn_loss, &c, c.k, n, gk);
    fd_grad(attn_loss, &c, c.v, n, gv);
    attention_backward(dq, dk, dv, R, att, q, k, v, B, T, C, H, W, mode);
    double eq = note(E_FD_LAYER, rel_err_fd(dq, gq, n)), ek = note(E_FD_LAYER, rel_err_fd(dk, gk, n)),
           ev = note(E_FD_LAYER, rel_err_fd(dv, gv, n));
    CHECK(eq < TOL_GRAD && ek < TOL_GRAD && ev < TOL_GRAD,
          S("attention_backward %s w=%d vs finite differences", mname, W), "dq %.2e, dk %.2e, dv %.2e%s", eq, ek, ev,
          mode == ATTN_SOFTMAX && W == 1 ? " (w=1 softmax: dq = dk = 0 exactly)" : "");
    attention_backward(dq2, dk2, dv2, R, att, q, k, v, B, T, C, H, W, mode);
    attention_backward(dq2, dk2, dv2, R, att, q, k, v, B, T, C, H, W, mode);
    double a1 = doubled_err(dq, dq2, n), a2 = doubled_err(dk, dk2, n), a3 = doubled_err(dv, dv2, n);
    CHECK(a1 < TOL_ACC && a2 < TOL_ACC && a3 < TOL_ACC, S("attention_backward %s w=%d accumulates", mname, W),
          "2nd call doubles: dq %.1e dk %.1e dv %.1e", a1, a2, a3);
    free(q); free(k); free(v); free(R); free(o); free(att); free(dq); free(dk); free(dv); free(dq2); free(dk2);
    free(dv2); free(c.slopes); free(c.q); free(c.k); free(c.v); free(c.R); free(orf); free(wr); free(gq); free(gk);
    free(gv);
}

/* ---- exp_approx and the lane sums ---- */
static void test_exp_and_sums(void) {
    double worst = 0.0;
    for (double x = -87.0; x <= 88.0; x += 1.7e-4) {
        float f = (float)x;
        double rel = fabs(exp_approx(f) - exp((double)f)) / exp((double)f);
        if (rel > worst) worst = rel;
    }
    volatile float nan_in = NAN;
    CHECK(worst < 2.0 * FLT_EPSILON && exp_approx(0.0f) == 1.0f && isnan(exp_approx(nan_in)) && isnan(sigmoid(nan_in)),
          "exp_approx within 2 ulp of exp over [-87, 88]; exp(0) = 1; NaN stays NaN", "max rel err %.2e", worst);
    uint64_t s = 77;
    float *x = rand_floats(203, 1.0, &s), *y = rand_floats(203, 1.0, &s), *z = rand_floats(203, 1.0, &s);
    double d3 = 0, d2 = 0, se = 0, mx = -1e30, scale = 0;
    for (int i = 0; i < 203; i++) {
        d3 += (double)x[i] * y[i] * z[i]; d2 += (double)x[i] * y[i]; se += exp((double)x[i] - 0.5);
        if (x[i] > mx) mx = x[i];
        scale += fabs((double)x[i] * y[i]);
    }
    double e = fmax(fabs(dot3(x, y, z, 203) - d3), fabs(dot3(x, y, NULL, 203) - d2)) / scale;
    double es = fabs(sum_exp(x, 0.5f, 203) - se) / se;
    float mx5 = x[0];
    for (int i = 1; i < 5; i++) mx5 = x[i] > mx5 ? x[i] : mx5;
    CHECK(e < 1e-6 && es < 1e-6 && max_of(x, 203) == (float)mx && max_of(x, 5) == mx5,
          "dot3, sum_exp and max_of (16 lanes plus a tail of 11; a tail alone) against double sums",
          "dot %.1e, sum_exp %.1e", e, es);
    free(x); free(y); free(z);
}

/* A NaN weight must give a NaN loss (so training stops on divergence), and must not reach
 * exp_approx's float-to-int conversion (undefined behaviour; the UBSan build checks). */
static void test_nan_propagates(void) {
    ModelConfig cfg = make_config(16, 1, 2, 8, 12, 3, ATTN_SIGMOID, 1, 1, 1);
    Model m;
    make_random_model(&m, &cfg, 0.1, 5);
    int in[8], tg[8];
    for (int i = 0; i < 8; i++) { in[i] = i; tg[i] = (i * 3) % 16; }
    m.param.wq[3] = NAN;
    float loss = model_forward(&m, in, tg, 1, 8, cfg.window);
    CHECK(isnan(loss), "a NaN weight gives a NaN loss", "loss %g", loss);
    model_free(&m);
}

/* ---- SwiGLU ---- */
typedef struct { long n; double *g, *u, *R; } SwigluCtx;
static double swiglu_loss(void *p) {
    SwigluCtx *c = p;
    double *y = dalloc(c->n), s = 0.0;
    ref_swiglu(y, c->g, c->u, c->n);
    for (long i = 0; i < c->n; i++) s += y[i] * c->R[i];
    free(y);
    return s;
}

static void test_swiglu(void) {
    uint64_t s = 15;
    long n = 40;
    float *g = rand_floats(n, 2.0, &s), *u = rand_floats(n, 1.0, &s), *R = rand_floats(n, 1.0, &s), *y = falloc(n),
          *dg = falloc(n), *du = falloc(n), *dg2 = falloc(n), *du2 = falloc(n);
    SwigluCtx c = {n, to_double(g, n), to_double(u, n), to_double(R, n)};
    double *yr = dalloc(n);
    ref_swiglu(yr, c.g, c.u, n);
    swiglu_forward(y, g, u, n);
    double e = note(E_FWD_LAYER, rel_err_fd(y, yr, n));
    CHECK(e < TOL_FWD, "swiglu_forward", "max rel err %.2e", e);
    double *gg = dalloc(n), *gu = dalloc(n);
    fd_grad(swiglu_loss, &c, c.g, n, gg);
    fd_grad(swiglu_loss, &c, c.u, n, gu);
    swiglu_backward(dg, du, R, g, u, n, 1);
    double eg = note(E_FD_LAYER, rel_err_fd(dg, gg, n)), eu = note(E_FD_LAYER, rel_err_fd(du, gu, n));
    CHECK(eg < TOL_GRAD && eu < TOL_GRAD, "swiglu_backward vs finite differences", "dgate %.2e, dup %.2e", eg, eu);
    swiglu_backward(dg2, du2, R, g, u, n, 1);
    swiglu_backward(dg2, du2, R, g, u, n, 1);
    double a1 = doubled_err(dg, dg2, n), a2 = doubled_err(du, du2, n);
    CHECK(a1 < TOL_ACC && a2 < TOL_ACC, "swiglu_backward accumulates", "2nd call doubles: dgate %.1e, dup %.1e", a1, a2);
    for (long i = 0; i < n; i++) dg2[i] = du2[i] = 1e6f;
    swiglu_backward(dg2, du2, R, g, u, n, 0);
    double o1 = rel_err_ff(dg2, dg, n), o2 = rel_err_ff(du2, du, n);
    CHECK(o1 == 0.0 && o2 == 0.0, "swiglu_backward with add = 0 overwrites", "vs one call on zeros: dgate %.1e, dup %.1e", o1, o2);
    free(g); free(u); free(R); free(y); free(dg); free(du); free(dg2); free(du2); free(c.g); free(c.u); free(c.R);
    free(yr); free(gg); free(gu);
}

/* ---- cross-entropy ---- */
typedef struct { int N, V; double *z, dloss; const int *tg; } XentCtx;
static double xent_loss(void *p) {
    XentCtx *c = p;
    return c->dloss * c->N * ref_xent(c->z, c->tg, c->N, c->V, NULL);
}

static void test_crossentropy(void) {
    uint64_t s = 16;
    int N = 7, V = 13, tg[7];
    random_tokens(tg, N, V, &s);
    float *z = rand_floats((size_t)N * V, 3.0, &s), *losses = falloc(N), *dz = falloc((size_t)N * V),
          *dz2 = falloc((size_t)N * V);
    z[5] = 80.0f; /* a large logit: the max-subtraction must keep it finite */
    XentCtx c = {N, V, to_double(z, (size_t)N * V), 0.37, tg};
    double *lr = dalloc(N);
    ref_xent(c.z, tg, N, V, lr);
    crossentropy_forward(losses, z, tg, N, V);
    double e = note(E_FWD_LAYER, rel_err_fd(losses, lr, N));
    CHECK(e < TOL_FWD, "crossentropy_forward", "per-position losses %.2e", e);
    double *g = dalloc((size_t)N * V);
    fd_grad(xent_loss, &c, c.z, (size_t)N * V, g);
    crossentropy_backward(dz, z, tg, (float)c.dloss, N, V, 1);
    double eg = note(E_FD_LAYER, rel_err_fd(dz, g, (size_t)N * V));
    CHECK(eg < TOL_GRAD, "crossentropy_backward vs finite differences", "dlogits %.2e (dloss 0.37)", eg);
    crossentropy_backward(dz2, z, tg, (float)c.dloss, N, V, 1);
    crossentropy_backward(dz2, z, tg, (float)c.dloss, N, V, 1);
    double a = doubled_err(dz, dz2, (size_t)N * V);
    CHECK(a < TOL_ACC, "crossentropy_backward accumulates", "2nd call doubles: %.1e", a);
    free(z); free(losses); free(dz); free(dz2); free(c.z); free(lr); free(g);
}

static void test_alibi_slopes(void) {
    /* every H from 1 to 16 with several splits, in both versions, against ref_slopes */
    int ok = 1, cases = 0;
    for (int version = 1; version <= 2; version++)
        for (int H = 1; H <= 16; H++) {
            int splits[][2] = {{H / 2, H - H / 2}, {H, 0}, {0, H}, {0, 0}, {H / 3, H / 3}, {1, H - 1}};
            for (int i = 0; i < 6; i++) {
                ModelConfig c = make_config(10, 1, H, 2 * H, 4, 4, 0, splits[i][0], splits[i][1], 1);
                c.version = version;
                if (config_problem(&c)) continue;
                float s[16];
                double r[16];
                alibi_slopes(&c, s);
                ref_slopes(r, &c);
                for (int h = 0; h < H; h++) ok &= s[h] == (float)r[h];
                cases++;
            }
        }
    CHECK(ok && cases > 150, "alibi_slopes per spec, versions 1 and 2",
          "%d (version, H, NEG:POS) cases with H = 1..16 exactly equal to the formula", cases);
    /* the numbers themselves: v2 with H = 6 is 2^(-8k/6); H = 8 is the same in both versions */
    ModelConfig c6 = make_config(10, 1, 6, 12, 4, 4, 0, 3, 3, 1), c8 = make_config(10, 1, 8, 16, 4, 4, 0, 4, 4, 1);
    float s6[6], s8a[8], s8b[8];
    alibi_slopes(&c6, s6);
    alibi_slopes(&c8, s8a);
    c8.version = 1;
    alibi_slopes(&c8, s8b);
    int v6 = s6[0] == -(float)pow(2.0, -8.0 / 6) && s6[2] == -0.0625f && s6[3] == (float)pow(2.0, -8.0 / 6) &&
             s6[5] == 0.0625f;
    CHECK(v6 && !memcmp(s8a, s8b, sizeof s8a) && s8a[3] == -0.0625f,
          "alibi_slopes: H = 6 (3:3) gives -2^(-4/3), .., -2^-4, +2^(-4/3), .., +2^-4; H = 8 the same in both versions",
          "%g %g %g | %g %g %g", s6[0], s6[1], s6[2], s6[3], s6[4], s6[5]);
}

/* ========================================================================================== */
/* 3. the whole model: forward vs the reference, gradients vs finite differences              */
/* ========================================================================================== */

typedef struct { int attn, neg, pos, rope, w, heads; } AttnVariant; /* heads 0 means 4 */
/* Every value appears with both sigmoid and softmax: ALiBi 2:2, 4:0, 0:4, 0:0 (and 1:2 with a
 * zero-slope head); RoPE on and off; w < T (5, 4), w = T (13), w > T (20) and w = 1. */
static const AttnVariant model_variants[] = {
    {ATTN_SIGMOID, 2, 2, 1, 5, 0},  {ATTN_SOFTMAX, 2, 2, 1, 5, 0},
    {ATTN_SIGMOID, 4, 0, 0, 13, 0}, {ATTN_SOFTMAX, 4, 0, 0, 13, 0},
    {ATTN_SIGMOID, 0, 4, 1, 20, 0}, {ATTN_SOFTMAX, 0, 4, 1, 20, 0},
    {ATTN_SIGMOID, 0, 0, 0, 1, 0},  {ATTN_SOFTMAX, 0, 0, 1, 1, 0},
    {ATTN_SIGMOID, 1, 2, 1, 4, 0},  {ATTN_SOFTMAX, 1, 2, 0, 4, 0},
    /* H = 6: the version 2 slopes 2^(-8k/6) differ from version 1's 2^-k */
    {ATTN_SIGMOID, 3, 3, 1, 5, 6}, {ATTN_SOFTMAX, 4, 2, 1, 5, 6},
};

static void test_model_variant(const AttnVariant *av, int idx) {
    const int V = 23, L = 2, H = av->heads ? av->heads : 4, C = 4 * H, F = 24, B = 2, T = 13;
    ModelConfig cfg = make_config(V, L, H, C, F, av->w, av->attn, av->neg, av->pos, av->rope);
    char desc[128];
    snprintf(desc, sizeof desc, "%s%s", config_desc(&cfg, av->w), H != 4 ? S(" H=%d", H) : "");
    Model m;
    make_random_model(&m, &cfg, 0.3, 100 + idx);
    uint64_t s = 200 + idx;
    int in[B * T], tg[B * T];
    random_tokens(in, B * T, V, &s);
    random_tokens(tg, B * T, V, &s);
    size_t np = m.num_params;
    RefLayout lo = ref_layout(&cfg);
    CHECK(np == lo.total, S("param_count %s", desc), "%zu parameters, spec layout %zu", np, lo.total);
    double *P = to_double(m.params, np), *zr = dalloc((size_t)B * T * V);
    double loss_r = ref_forward(&cfg, P, in, tg, B, T, av->w, zr, NULL);
    float loss = model_forward(&m, in, tg, B, T, av->w);
    double el = note(E_FWD_MODEL, fabs(loss - loss_r) / fabs(loss_r));
    double ez = note(E_FWD_MODEL, rel_err_fd(m.a.logits, zr, (size_t)B * T * V));
    CHECK(ez < TOL_FWD && el < TOL_FWD, S("model_forward %s", desc), "logits %.2e, loss %.2e (loss %.4f)", ez, el, loss_r);

    /* gradients of every tensor against finite differences of the double reference, every
     * element. Per tensor: max|g_c - g_fd| / max|g_fd| < 1e-4. The C gradients are float32
     * sums over at most a few hundred terms through two layers, good to ~1e-6 of the tensor's
     * scale (measured 1e-7 .. 3e-6); the finite differences are good to ~1e-9. A wrong term
     * in any backward shows up at 1e-3 .. 1. */
    model_zero_grad(&m);
    model_backward(&m);
    double *G = dalloc(np);
    ref_fd_model_grads(&cfg, P, np, in, tg, B, T, av->w, G);
    char detail[1024];
    int n = 0, ok = 1;
    double wmax = 0.0;
    const char *wname = "";
    for (int t = 0; t < R_NT; t++) {
        double e = note(E_FD_MODEL, rel_err_fd(m.grads + lo.off[t], G + lo.off[t], lo.size[t]));
        if (!(e < TOL_GRAD)) ok = 0;
        if (!(e <= wmax)) { wmax = e; wname = ref_names[t]; }
        n += snprintf(detail + n, sizeof detail - n, "%s%s %.1e", t ? ", " : "", ref_names[t], e);
    }
    CHECK(ok, S("model_backward %s vs finite differences, all %zu elements", desc, np), "worst %s %.2e; %s", wname,
          wmax, detail);
    /* model_backward adds into m->grads */
    float *g1 = malloc(np * 4);
    memcpy(g1, m.grads, np * 4);
    model_backward(&m);
    double a = doubled_err(g1, m.grads, np);
    CHECK(a < TOL_ACC, S("model_backward %s accumulates", desc), "2nd call doubles: %.1e", a);
    /* a forward without targets gives the same logits */
    float *z1 = malloc((size_t)B * T * V * 4);
    memcpy(z1, m.a.logits, (size_t)B * T * V * 4);
    model_forward(&m, in, NULL, B, T, av->w);
    CHECK(!memcmp(z1, m.a.logits, (size_t)B * T * V * 4) && !m.has_targets, S("model_forward without targets %s", desc),
          "identical logits, backward disabled");
    free(g1); free(z1); free(P); free(zr); free(G);
    model_free(&m);
}

/* ========================================================================================== */
/* 4. the PyTorch debug states                                                                */
/* ========================================================================================== */

#define STATE_MAGIC 0x44574153
typedef struct {
    int32_t hdr[256];
    double hyper[16];
    int B, T, V, P, nsteps, warmup, window, clipped;
    int *inputs, *targets;
    float *logits, *grads, *params_after;
    double loss, *losses;
} DebugState;

static void *read_file(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(*size + 1); /* one more byte: a 0, so text files are strings */
    if (fread(buf, 1, *size, f) != (size_t)*size) { free(buf); buf = NULL; }
    else buf[*size] = 0;
    fclose(f);
    return buf;
}

/* Returns NULL on success, else what is wrong with the file. */
static const char *state_load(DebugState *st, const char *path) {
    long size;
    char *buf = read_file(path, &size);
    if (!buf) return "cannot read";
    memset(st, 0, sizeof(*st));
    if (size < 1024 + 128) { free(buf); return "shorter than its header"; }
    memcpy(st->hdr, buf, 1024);
    memcpy(st->hyper, buf + 1024, 128);
    if (st->hdr[0] != STATE_MAGIC) { free(buf); return "bad magic (expected the int32 0x44574153)"; }
    if (st->hdr[1] != 1) { free(buf); return "unsupported version"; }
    st->B = st->hdr[2]; st->T = st->hdr[3]; st->V = st->hdr[4]; st->P = st->hdr[5]; st->nsteps = st->hdr[6];
    st->warmup = st->hdr[7]; st->window = st->hdr[8]; st->clipped = st->hdr[9];
    long BT = (long)st->B * st->T;
    if (st->B < 1 || st->T < 1 || st->V < 1 || st->P < 1 || st->nsteps < 1 || st->nsteps > 1000) { free(buf); return "bad header"; }
    long expect = 1024 + 128 + 8 * BT + 4 * BT * st->V + 8 + 8L * st->P + 8L * st->nsteps;
    if (size != expect) { free(buf); return "file size does not match its header"; }
    char *p = buf + 1024 + 128;
    st->inputs = malloc(BT * 4); memcpy(st->inputs, p, BT * 4); p += BT * 4;
    st->targets = malloc(BT * 4); memcpy(st->targets, p, BT * 4); p += BT * 4;
    st->logits = malloc(BT * st->V * 4); memcpy(st->logits, p, BT * st->V * 4); p += BT * st->V * 4;
    memcpy(&st->loss, p, 8); p += 8;
    st->grads = malloc(st->P * 4L); memcpy(st->grads, p, st->P * 4L); p += st->P * 4L;
    st->losses = malloc(st->nsteps * 8L); memcpy(st->losses, p, st->nsteps * 8L); p += st->nsteps * 8L;
    st->params_after = malloc(st->P * 4L); memcpy(st->params_after, p, st->P * 4L);
    free(buf);
    return NULL;
}

static void state_free(DebugState *st) {
    free(st->inputs); free(st->targets); free(st->logits); free(st->grads); free(st->losses); free(st->params_after);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Tolerances against PyTorch (which works in float64 from the same float32 weights):
 * logits, loss and gradients 1e-4 of each tensor's scale, our float32 error being ~1e-6.
 * After 10 AdamW steps at lr 1e-2 the parameters are compared to 1e-3 of each tensor's
 * scale: an Adam update is lr * m/sqrt(v), normalised per element, so an element whose
 * gradient is tiny (|g| comparable to its float32 rounding error, ~1e-7 of the tensor's
 * scale) can move by a different fraction of lr in float32 and float64. Such an element
 * can differ by up to ~lr = 1e-2 in absolute terms in the worst case. Measured: at most 6e-6
 * of the scale; each AdamW bug tried against this suite (bias correction, eps placement,
 * decay on the gains, the warmup or cosine off by one step, no clipping) fails it by far. */
static void test_pytorch_state(const char *dir, const char *name) {
    char spath[1024], cpath[1024];
    snprintf(spath, sizeof spath, "%s/%s.state", dir, name);
    snprintf(cpath, sizeof cpath, "%s/%s.ckpt", dir, name);
    DebugState st;
    const char *problem = state_load(&st, spath);
    if (problem) { CHECK(0, S("pytorch %s: state file", name), "%s: %s", spath, problem); return; }
    if (access(cpath, R_OK) != 0) { CHECK(0, S("pytorch %s: checkpoint", name), "%s is missing", cpath); state_free(&st); return; }
    Model m;
    checkpoint_load(cpath, &m, NULL);
    int B = st.B, T = st.T, V = st.V, P = st.P, w = m.cfg.window;
    int shape_ok = m.cfg.V == V && (int)m.num_params == P && w == st.window && m.cfg.seq_len == T;
    CHECK(shape_ok, S("pytorch %s: checkpoint matches the state", name), "%s V=%d P=%d w=%d T=%d",
          config_desc(&m.cfg, w), m.cfg.V, (int)m.num_params, w, m.cfg.seq_len);
    if (!shape_ok) { model_free(&m); state_free(&st); return; }
    double *zref = to_double(st.logits, (size_t)B * T * V);
    float loss = model_forward(&m, st.inputs, st.targets, B, T, w);
    double ez = note(E_PT_LOGITS, rel_err_fd(m.a.logits, zref, (size_t)B * T * V));
    double el = note(E_PT_LOSS, fabs(loss - st.loss) / fabs(st.loss));
    CHECK(ez < 1e-4 && el < 1e-4, S("pytorch %s: logits and loss", name), "logits %.2e, loss %.2e (%.6f vs %.6f)", ez, el,
          loss, st.loss);
    free(zref);
    model_zero_grad(&m);
    model_backward(&m);
    RefLayout lo = ref_layout(&m.cfg);
    char detail[1024];
    int n = 0, ok = 1;
    for (int t = 0; t < R_NT; t++) {
        double *gr = to_double(st.grads + lo.off[t], lo.size[t]);
        double e = note(E_PT_GRADS, rel_err_fd(m.grads + lo.off[t], gr, lo.size[t]));
        free(gr);
        if (!(e < 1e-4)) ok = 0;
        n += snprintf(detail + n, sizeof detail - n, "%s%s %.1e", t ? ", " : "", ref_names[t], e);
    }
    CHECK(ok, S("pytorch %s: gradients, per tensor", name), "%s", detail);

    /* 10 AdamW steps on the same batch with the state's hyperparameters */
    OptimConfig o = {.lr = st.hyper[0], .beta1 = st.hyper[1], .beta2 = st.hyper[2], .eps = st.hyper[3],
                     .weight_decay = st.hyper[4], .clip = st.hyper[5], .min_lr_ratio = st.hyper[6],
                     .warmup = st.warmup, .steps = st.nsteps};
    double el_max = 0.0;
    int clipped = 0;
    for (int step = 0; step < st.nsteps; step++) {
        float l = model_forward(&m, st.inputs, st.targets, B, T, w);
        model_zero_grad(&m);
        model_backward(&m);
        double norm = grad_norm(m.grads, m.num_params);
        if (o.clip > 0 && o.clip / (norm + 1e-6) < 1.0) clipped = 1;
        adamw_step(&m, &o, step, lr_at_step(&o, step), norm);
        double e = fabs(l - st.losses[step]);
        if (!(e <= el_max)) el_max = e;
    }
    note(E_PT_LOSSES, el_max);
    CHECK(el_max < 1e-4 && clipped == st.clipped, S("pytorch %s: %d AdamW steps, losses", name, st.nsteps),
          "max |loss - torch| %.2e, %.4f -> %.4f; clipping active in some step: C %d, torch %d", el_max, st.losses[0],
          st.losses[st.nsteps - 1], clipped, st.clipped);
    n = 0; ok = 1;
    double wmax = 0.0;
    const char *wname = "";
    for (int t = 0; t < R_NT; t++) {
        double *pr = to_double(st.params_after + lo.off[t], lo.size[t]);
        double e = note(E_PT_PARAMS, rel_err_fd(m.params + lo.off[t], pr, lo.size[t]));
        free(pr);
        if (!(e < 1e-3)) ok = 0;
        if (!(e <= wmax)) { wmax = e; wname = ref_names[t]; }
        n += snprintf(detail + n, sizeof detail - n, "%s%s %.1e", t ? ", " : "", ref_names[t], e);
    }
    CHECK(ok, S("pytorch %s: params after %d AdamW steps", name, st.nsteps), "worst %s %.2e; %s", wname, wmax, detail);
    model_free(&m);
    state_free(&st);
}

static void test_pytorch_states(void) {
    const char *dir = getenv("SWAT_STATES");
    if (!dir || !*dir) dir = "dev/states";
    char *names[64];
    int n = 0;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) && n < 64) {
            size_t len = strlen(e->d_name);
            if (len > 6 && !strcmp(e->d_name + len - 6, ".state")) {
                names[n] = strdup(e->d_name);
                names[n++][len - 6] = 0;
            }
        }
        closedir(d);
    }
    if (n == 0) {
        printf("SKIPPED: PyTorch states not found (%s/*.state; generate them with "
               "/usr/bin/python3 dev/train_swat.py --write-states dev/states)\n", dir);
        skip("pytorch cross-check", "no debug states in %s", dir);
        return;
    }
    qsort(names, n, sizeof(char *), cmp_str);
    for (int i = 0; i < n; i++) { test_pytorch_state(dir, names[i]); free(names[i]); }
}

/* ========================================================================================== */
/* 5. checkpoints, evaluation, inference, schedule, optimizer, loader, determinism, training  */
/* ========================================================================================== */

static char scratch[512]; /* the mkdtemp scratch directory */
/* scratch/name, as a string that stays valid until the end (one slot per distinct name) */
static const char *tmp_path(const char *name) {
    static char paths[64][600];
    static int used;
    char want[600];
    snprintf(want, sizeof want, "%s/%s", scratch, name);
    for (int i = 0; i < used; i++) if (!strcmp(paths[i], want)) return paths[i];
    if (used == 64) test_die("tmp_path: too many scratch files");
    memcpy(paths[used], want, sizeof want);
    return paths[used++];
}

/* The CRC of a checkpoint image as spec section 3 defines it: over the whole file with
 * header field 17 taken as 0. */
static uint32_t image_crc(const char *raw, long size) {
    uint32_t zero = 0;
    return crc32_update(crc32_update(crc32_update(0, raw, 68), &zero, 4), raw + 72, (size_t)(size - 72));
}

/* A version 2 header per spec section 3, including field 16 (the start token) and the CRC
 * of the whole file in field 17 (h points at the start of a file of `size` bytes). */
static int header_matches_spec(const int32_t *h, long size, const ModelConfig *c, int step, int has_state) {
    int ok = !memcmp(h, "SWAT", 4) && h[0] == 0x54415753 && h[1] == 2 && h[2] == c->V && h[3] == c->L &&
             h[4] == c->H && h[5] == c->C && h[6] == c->F && h[7] == c->window && h[8] == c->attn &&
             h[9] == c->alibi_neg && h[10] == c->alibi_pos && h[11] == c->rope && h[12] == c->rope_theta &&
             h[13] == c->seq_len && h[14] == step && h[15] == has_state && h[16] == c->bos &&
             (uint32_t)h[17] == image_crc((const char *)h, size);
    for (int i = 18; i < 256; i++) ok &= h[i] == 0;
    return ok;
}

static int config_equal(const ModelConfig *a, const ModelConfig *b) {
    return a->V == b->V && a->L == b->L && a->H == b->H && a->C == b->C && a->F == b->F && a->window == b->window &&
           a->attn == b->attn && a->alibi_neg == b->alibi_neg && a->alibi_pos == b->alibi_pos && a->rope == b->rope &&
           a->rope_theta == b->rope_theta && a->seq_len == b->seq_len && a->bos == b->bos && a->version == b->version;
}

static void test_checkpoints(void) {
    ModelConfig cfg = make_config(29, 2, 3, 12, 20, 5, ATTN_SOFTMAX, 2, 1, 1); /* every field distinct from its neighbours */
    cfg.rope_theta = 500; cfg.seq_len = 77; cfg.bos = 28;
    Model m, m2, m3;
    make_random_model(&m, &cfg, 0.5, 31);
    size_t P = m.num_params;
    uint64_t s = 32;
    m.adam_m = rand_floats(P, 0.1, &s);
    m.adam_v = falloc(P);
    for (size_t i = 0; i < P; i++) m.adam_v[i] = (float)(0.01 * trng_unif(&s));
    TrainState ts = {.opt = {.lr = 3.5e-3, .min_lr_ratio = 0.05, .warmup = 17, .steps = 900, .beta1 = 0.85,
                             .beta2 = 0.99, .eps = 1e-7, .weight_decay = 0.02, .clip = 0.75},
                     .B = 3, .T = 77, .shuffle = 1, .step = 42, .seed = 0xDEADBEEF12345ull,
                     .sample_rng = 0xFEDCBA9876543210ull, .cursor = 123, .epoch = 4};
    const char *path = tmp_path("state.ckpt");
    checkpoint_save(path, &m, &ts);
    long size;
    char *raw = read_file(path, &size);
    long expect = 1024 + 12L * P + 8L * (TRAINER_STATE_INTS + TRAINER_STATE_DOUBLES);
    CHECK(raw && size == expect && header_matches_spec((int32_t *)raw, size, &cfg, 42, 1) &&
          !memcmp(raw + 1024, m.params, P * 4) && !memcmp(raw + 1024 + 4 * P, m.adam_m, P * 4) &&
          !memcmp(raw + 1024 + 8 * P, m.adam_v, P * 4),
          "checkpoint with trainer state: file layout",
          "%ld bytes = 1024 + 12*%zu + 8*(%d+%d); header per spec section 3 (\"SWAT\", v1, [14]=42, [15]=1, "
          "reserved 0); params, m, v in order", size, P, TRAINER_STATE_INTS, TRAINER_STATE_DOUBLES);
    /* the trainer-state tail as documented in the README: 16 int64, then 16 float64 */
    int tail_ok = 0;
    if (raw && size == expect) {
        int64_t ints[16];
        double dbl[16];
        memcpy(ints, raw + 1024 + 12 * P, sizeof ints);
        memcpy(dbl, raw + 1024 + 12 * P + sizeof ints, sizeof dbl);
        tail_ok = !memcmp(ints, "SWATTRUN", 8) && ints[1] == 900 && ints[2] == 17 && ints[3] == 3 && ints[4] == 77 &&
                  (uint64_t)ints[5] == ts.seed && ints[6] == 1 && ints[7] == 123 && ints[8] == 4 &&
                  (uint64_t)ints[9] == ts.sample_rng && dbl[0] == 3.5e-3 && dbl[1] == 0.05 && dbl[2] == 0.85 &&
                  dbl[3] == 0.99 && dbl[4] == 1e-7 && dbl[5] == 0.02 && dbl[6] == 0.75;
        for (int i = 10; i < 16; i++) tail_ok &= ints[i] == 0;
        for (int i = 7; i < 16; i++) tail_ok &= dbl[i] == 0.0;
    }
    CHECK(tail_ok, "checkpoint trainer-state tail per README", "\"SWATTRUN\", steps, warmup, B, T, seed, shuffle, cursor, epoch, "
          "sampling RNG; lr, min_lr_ratio, betas, eps, wd, clip; the rest 0");
    free(raw);
    TrainState ts2;
    memset(&ts2, 0x55, sizeof ts2);
    int has = checkpoint_load(path, &m2, &ts2);
    int ok = has == 1 && config_equal(&m2.cfg, &cfg) && m2.num_params == P && !memcmp(m2.params, m.params, P * 4) &&
             m2.adam_m && !memcmp(m2.adam_m, m.adam_m, P * 4) && !memcmp(m2.adam_v, m.adam_v, P * 4);
    int ts_ok = ts2.opt.lr == ts.opt.lr && ts2.opt.min_lr_ratio == ts.opt.min_lr_ratio && ts2.opt.warmup == ts.opt.warmup &&
                ts2.opt.steps == ts.opt.steps && ts2.opt.beta1 == ts.opt.beta1 && ts2.opt.beta2 == ts.opt.beta2 &&
                ts2.opt.eps == ts.opt.eps && ts2.opt.weight_decay == ts.opt.weight_decay && ts2.opt.clip == ts.opt.clip &&
                ts2.B == ts.B && ts2.T == ts.T && ts2.shuffle == ts.shuffle && ts2.step == ts.step &&
                ts2.seed == ts.seed && ts2.sample_rng == ts.sample_rng && ts2.cursor == ts.cursor && ts2.epoch == ts.epoch;
    CHECK(ok && ts_ok, "checkpoint round trip with trainer state",
          "config, params, AdamW m and v bit-identical: %d; every TrainState field identical: %d", ok, ts_ok);
    CHECK(access(S("%s.tmp", path), F_OK) != 0, "checkpoint_save leaves no .tmp file", "%s.tmp absent", path);
    model_free(&m2);
    /* the same file read without asking for the state: weights only */
    has = checkpoint_load(path, &m2, NULL);
    CHECK(has == 0 && !memcmp(m2.params, m.params, P * 4) && !m2.adam_m, "checkpoint with state loaded weights-only",
          "returns 0, params identical, no moments allocated");
    model_free(&m2);

    /* without trainer state */
    const char *path2 = tmp_path("plain.ckpt");
    checkpoint_save(path2, &m, NULL);
    raw = read_file(path2, &size);
    CHECK(raw && size == 1024 + 4L * (long)P && header_matches_spec((int32_t *)raw, size, &cfg, 0, 0) &&
          !memcmp(raw + 1024, m.params, P * 4), "checkpoint without trainer state: file layout",
          "%ld bytes = 1024 + 4*%zu; header [14]=0 [15]=0", size, P);
    free(raw);
    memset(&ts2, 0, sizeof ts2);
    has = checkpoint_load(path2, &m3, &ts2);
    CHECK(has == 0 && config_equal(&m3.cfg, &cfg) && !memcmp(m3.params, m.params, P * 4) && !m3.adam_m,
          "checkpoint round trip without trainer state", "returns 0, config and params identical, no moments");
    model_free(&m3);
    /* a TrainState but no optimizer yet (e.g. --steps 0): still parameters only, step recorded */
    free(m.adam_m); free(m.adam_v); m.adam_m = m.adam_v = NULL;
    ts.step = 7;
    checkpoint_save(path2, &m, &ts);
    raw = read_file(path2, &size);
    CHECK(raw && size == 1024 + 4L * (long)P && header_matches_spec((int32_t *)raw, size, &cfg, 7, 0),
          "checkpoint with a TrainState but no moments", "%ld bytes, [14]=7 [15]=0", size);
    free(raw);
    model_free(&m);
}

static void write_shard_file(const char *path, const uint16_t *tok, long n, int32_t magic, int32_t version, int32_t declared) {
    int32_t h[256] = {0};
    h[0] = magic; h[1] = version; h[2] = declared;
    FILE *f = fopen(path, "wb");
    fwrite(h, 4, 256, f);
    if (n) fwrite(tok, 2, n, f);
    fclose(f);
}
static void write_shard(const char *path, const uint16_t *tok, long n) { write_shard_file(path, tok, n, 20240520, 1, (int32_t)n); }

static void test_evaluate(void) {
    ModelConfig cfg = make_config(19, 2, 4, 16, 24, 4, ATTN_SIGMOID, 2, 2, 1);
    Model m;
    make_random_model(&m, &cfg, 0.3, 41);
    double *P = to_double(m.params, m.num_params);
    uint64_t s = 42;
    long n = 16 * 5 + 3; /* K = 5 chunks of 16, 2 tokens left over */
    uint16_t tok[16 * 5 + 3];
    random_tokens16(tok, n, cfg.V, &s);
    Shard sh = {tok, n};
    struct { int E, W; long max_chunks; int batch; } cases[] = {
        {16, 4, 0, 2}, {16, 2, 0, 5}, {16, 9, 0, 1}, {16, 40, 0, 3}, {16, 1, 0, 2}, {7, 3, 4, 3}, {82, 4, 0, 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int E = cases[i].E, W = cases[i].W;
        long K;
        double got = evaluate(&m, &sh, E, W, cases[i].max_chunks, cases[i].batch, &K, NULL, NULL);
        double ref = ref_evaluate(&cfg, P, tok, n, E, W, cases[i].max_chunks);
        long Kref = (n - 1) / E;
        if (cases[i].max_chunks > 0 && cases[i].max_chunks < Kref) Kref = cases[i].max_chunks;
        double e = note(E_EVAL, fabs(got - ref) / fabs(ref));
        CHECK(e < TOL_FWD && K == Kref, S("evaluate E=%d W=%d (training window 4) max_chunks=%ld batch=%d", E, W, cases[i].max_chunks, cases[i].batch),
              "%ld chunks, %.6f vs reference %.6f, rel err %.2e", K, got, ref, e);
    }
    /* chunks are summed in order: the batch size does not change a single bit */
    double a = evaluate(&m, &sh, 16, 3, 0, 1, NULL, NULL, NULL), b = evaluate(&m, &sh, 16, 3, 0, 2, NULL, NULL, NULL),
           c = evaluate(&m, &sh, 16, 3, 0, 5, NULL, NULL, NULL);
    CHECK(a == b && b == c, "evaluate is independent of its batch size", "%.10f %.10f %.10f", a, b, c);
    free(P);
    model_free(&m);
}

/* The two "look inside" outputs: --dump-losses (evaluate's per-prediction losses) against the
 * reference's per-token losses, and --dump-attn (dump_attention's dense map) against the
 * reference attention weights of the chosen layer, recomputed from the reference residual
 * stream entering that layer. */
static void test_dumps(void) {
    ModelConfig cfg = make_config(19, 2, 4, 16, 24, 4, ATTN_SIGMOID, 2, 2, 1);
    for (int attn = 0; attn < 2; attn++) {
        cfg.attn = attn ? ATTN_SOFTMAX : ATTN_SIGMOID;
        const char *mode = attn ? "softmax" : "sigmoid";
        Model m;
        make_random_model(&m, &cfg, 0.3, 51 + attn);
        double *P = to_double(m.params, m.num_params);
        uint64_t s = 52;
        enum { E = 7, K = 4, W = 3, T = 11, LAYER = 1 };
        uint16_t tok[E * 5 + 2];
        long n = E * 5 + 2;
        random_tokens16(tok, n, cfg.V, &s);
        Shard sh = {tok, n};
        /* losses: K chunks of E, written in chunk order */
        FILE *f = fopen(tmp_path("losses.bin"), "wb");
        long Kgot;
        double mean = evaluate(&m, &sh, E, W, K, 3, &Kgot, f, NULL);
        fclose(f);
        long size = 0;
        float *got = read_file(tmp_path("losses.bin"), &size);
        double worst_err = 0.0, sum = 0.0;
        for (int c = 0; c < K && size == (long)K * E * 4; c++) {
            int in[E], tg[E];
            double ref_losses[E];
            for (int i = 0; i < E; i++) { in[i] = tok[c * E + i]; tg[i] = tok[c * E + i + 1]; }
            ref_forward(&cfg, P, in, tg, 1, E, W, NULL, ref_losses);
            for (int i = 0; i < E; i++) {
                double e = fabs(got[c * E + i] - ref_losses[i]) / fmax(1.0, fabs(ref_losses[i]));
                if (e > worst_err) worst_err = e;
                sum += got[c * E + i];
            }
        }
        CHECK(size == (long)K * E * 4 && worst_err < TOL_FWD && fabs(sum / (K * E) - mean) < 1e-6 * mean,
              S("--dump-losses: %d x %d per-token losses vs reference (%s)", K, E, mode),
              "%ld bytes, max err %.2e, mean %.6f vs eval %.6f", size, worst_err, sum / (K * E), mean);
        free(got);

        /* attention of layer 1 over T tokens with window W (the model's is 4) */
        int in[T];
        for (int i = 0; i < T; i++) in[i] = tok[i];
        dump_attention(&m, in, T, W, LAYER, tmp_path("attn.bin"));
        size = 0;
        unsigned char *file = read_file(tmp_path("attn.bin"), &size);
        long want = 8 + 6 * 4 + T * 4 + (long)cfg.H * T * T * 4;
        int32_t head[6];
        int header_ok = size == want && !memcmp(file, "SWATATTN", 8);
        if (header_ok) memcpy(head, file + 8, sizeof(head));
        header_ok = header_ok && head[0] == 1 && head[1] == LAYER && head[2] == cfg.H && head[3] == T &&
                    head[4] == W && head[5] == (int)cfg.attn;
        for (int i = 0; header_ok && i < T; i++) {
            int32_t t;
            memcpy(&t, file + 32 + 4 * i, 4);
            header_ok = t == in[i];
        }
        /* reference: the residual stream entering layer 1's attention, then its weights */
        int C = cfg.C, H = cfg.H;
        RefLayout lo = ref_layout(&cfg);
        double *streams = dalloc((size_t)(2 * cfg.L + 2) * T * C), *h = dalloc((size_t)T * C),
               *q = dalloc((size_t)T * C), *k = dalloc((size_t)T * C), *v = dalloc((size_t)T * C),
               *o = dalloc((size_t)T * C), *wref = dalloc((size_t)H * T * T), slopes[4];
        ref_run(&cfg, P, 0, NULL, in, NULL, 1, T, W, streams, NULL, NULL);
        size_t lC = (size_t)LAYER * C, lCC = lC * C;
        ref_rmsnorm(h, streams + (size_t)(2 * LAYER + 1) * T * C, P + lo.off[R_ATTN_NORM] + lC, T, C);
        ref_linear(q, h, P + lo.off[R_WQ] + lCC, T, C, C);
        ref_linear(k, h, P + lo.off[R_WK] + lCC, T, C, C);
        ref_linear(v, h, P + lo.off[R_WV] + lCC, T, C, C);
        ref_rope(q, 1, T, C, H, cfg.rope_theta, 0);
        ref_rope(k, 1, T, C, H, cfg.rope_theta, 0);
        ref_slopes(slopes, &cfg);
        ref_attention(o, wref, q, k, v, slopes, 1, T, C, H, W, attn);
        double err = header_ok ? 0.0 : INFINITY;
        for (long i = 0; header_ok && i < (long)H * T * T; i++) {
            float w;
            memcpy(&w, file + 32 + 4 * T + 4 * i, 4);
            double e = fabs(w - wref[i]);
            if (e > err) err = e;
        }
        CHECK(header_ok && err < TOL_FWD, S("--dump-attn: layer 1, window 3, %d tokens: header and dense weights vs reference (%s)", T, mode),
              "%ld of %ld bytes, header %s, max abs err %.2e", size, want, header_ok ? "ok" : "WRONG", err);
        /* the sink diagnostics of that forward pass (B = 1, T = 11, window 3), layer 1, against
         * the reference weights: queries 1 .. W-1 see position 0 */
        SinkStats st;
        sink_stats_init(&st, &cfg);
        sink_stats_add(&st, &m);
        double serr = st.queries == W - 1 ? 0.0 : INFINITY;
        int ref_sinks = 0;
        for (int hh = 0; hh < H; hh++) {
            double first = 0, rsum = 0, share = 0;
            for (int qq = 1; qq < W; qq++) {
                const double *row = wref + ((size_t)hh * T + qq) * T;
                double r = 0;
                for (int nn = 0; nn <= qq; nn++) r += row[nn];
                first += row[0]; rsum += r; share += row[0] / r;
            }
            int i = LAYER * H + hh;
            serr = fmax(serr, fabs(st.first[i] - first) + fabs(st.row_sum[i] - rsum) + fabs(st.share[i] - share));
            ref_sinks += share / (W - 1) > SINK_THRESHOLD;
        }
        int layer1_sinks = 0;
        for (int hh = 0; hh < H; hh++) layer1_sinks += st.share[LAYER * H + hh] / st.queries > SINK_THRESHOLD;
        CHECK(serr < TOL_FWD && layer1_sinks == ref_sinks, S("sink diagnostics vs reference weights, layer 1 (%s)", mode),
              "weight on position 0, row sums and shares over %ld queries: max abs err %.2e; sink heads %d (reference %d)",
              st.queries, serr, layer1_sinks, ref_sinks);
        sink_stats_free(&st);
        free(file); free(streams); free(h); free(q); free(k); free(v); free(o); free(wref); free(P);
        model_free(&m);
    }
}

/* The sink-head count: a head is a sink head when its mean share on position 0 exceeds 0.3 and
 * it is on (mean row sum >= 0.05); a switched-off sigmoid head's large share of nothing is not. */
static void test_sink_heads_count(void) {
    SinkStats st;
    ModelConfig cfg = make_config(10, 1, 4, 8, 8, 4, ATTN_SIGMOID, 2, 2, 1);
    sink_stats_init(&st, &cfg);
    st.queries = 10;
    double first[4] = {6.0, 0.06, 1.0, 0.3}, row_sum[4] = {10.0, 0.1, 40.0, 0.5}; /* means 0.6/1, 0.006/0.01, ... */
    for (int h = 0; h < 4; h++) { st.first[h] = first[h]; st.row_sum[h] = row_sum[h]; st.share[h] = 10.0 * first[h] / row_sum[h]; }
    int count = sink_heads(&st);
    CHECK(count == 2, "sink heads: share > 0.3 among heads that are on (row sum >= 0.05)",
          "heads with (share, row sum) (0.6, 1.0) (0.6, 0.01) (0.025, 4.0) (0.6, 0.05): %d sink heads, want 2", count);
    sink_stats_free(&st);
}

static void test_inference(void) {
    struct { int attn, neg, pos, rope; } v[] = {
        {ATTN_SIGMOID, 2, 2, 1}, {ATTN_SIGMOID, 4, 0, 1}, {ATTN_SIGMOID, 0, 4, 1}, {ATTN_SIGMOID, 0, 0, 1},
        {ATTN_SOFTMAX, 2, 2, 1}, {ATTN_SOFTMAX, 4, 0, 1}, {ATTN_SOFTMAX, 0, 4, 1}, {ATTN_SOFTMAX, 0, 0, 1},
        {ATTN_SIGMOID, 2, 2, 0}, {ATTN_SOFTMAX, 1, 2, 0}};
    const int w = 5, T = 3 * w, V = 23;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ModelConfig cfg = make_config(V, 2, 4, 16, 24, w, v[i].attn, v[i].neg, v[i].pos, v[i].rope);
        Model m;
        make_random_model(&m, &cfg, 0.3, 50 + i);
        uint64_t s = 60 + i;
        int tok[3 * 5];
        random_tokens(tok, T, V, &s);
        model_forward(&m, tok, NULL, 1, T, w);
        InferState st;
        infer_init(&st, &m, w, 0, 1);
        double e = 0.0;
        for (int p = 0; p < T; p++) {
            infer_step(&st, tok[p]);
            double ep = rel_err_ff(st.logits, m.a.logits + (long)p * V, V);
            if (!(ep <= e)) e = ep;
        }
        note(E_INFER, e);
        CHECK(e < 1e-4, S("infer_step ring buffer vs parallel forward, %s, %d positions", config_desc(&cfg, w), T),
              "max rel err %.2e over all positions", e);
        infer_free(&st);
        model_free(&m);
    }
}

static void test_evaluate_stream(void) {
    ModelConfig cfg = make_config(31, 2, 4, 16, 24, 6, ATTN_SIGMOID, 2, 2, 1);
    Model m;
    make_random_model(&m, &cfg, 0.3, 71);
    long n = 3001;
    uint16_t *tok = malloc(n * 2);
    uint64_t s = 72;
    random_tokens16(tok, n, cfg.V, &s);
    Shard sh = {tok, n};
    double a = evaluate(&m, &sh, (int)(n - 1), cfg.window, 0, 1, NULL, NULL, NULL);
    double b = evaluate_stream(&m, &sh, cfg.window, 0, 0, NULL);
    double e = note(E_STREAM, fabs(a - b) / fabs(a));
    CHECK(e < 1e-4, "evaluate_stream == evaluate(E = N-1, W = w)", "%ld tokens, w=6: %.8f vs %.8f, rel err %.2e", n, b, a, e);
    /* a shorter stream, window 3 */
    a = evaluate(&m, &sh, 500, 3, 1, 1, NULL, NULL, NULL);
    b = evaluate_stream(&m, &sh, 3, 0, 500, NULL);
    e = note(E_STREAM, fabs(a - b) / fabs(a));
    CHECK(e < 1e-4, "evaluate_stream max_tokens 500, window 3 == first chunk of 500", "%.8f vs %.8f, rel err %.2e", b, a, e);
    free(tok);
    model_free(&m);
}

/* ---- checkpoint version 2: CRC, start token, version 1 still read ---- */
static void test_crc32(void) {
    uint32_t a = crc32_update(0, "123456789", 9); /* the standard check value of CRC-32 */
    uint32_t b = crc32_update(crc32_update(0, "1234", 4), "56789", 5);
    CHECK(a == 0xCBF43926u && b == a && crc32_update(0, "", 0) == 0, "crc32_update: zlib's CRC-32, chainable",
          "crc(\"123456789\") = %08x (expected cbf43926), in two pieces %08x", a, b);
}

/* The committed fixture tests/fixtures/v1_h6.ckpt was written by the trainer of commit
 * d1b91a6 (checkpoint version 1, H = 6, ALiBi 3:3, so its slopes are 2^-k, not 2^(-8k/6)).
 * That code evaluated it, on tests/fixtures/v1_h6_eval.bin, to these values (gcc -O3
 * -march=native here; other builds differ in the last bits, so 1e-7 relative). */
static void test_v1_fixture(void) {
    const char *ck = "tests/fixtures/v1_h6.ckpt", *ev = "tests/fixtures/v1_h6_eval.bin";
    if (access(ck, R_OK) != 0 || access(ev, R_OK) != 0) {
        CHECK(0, "version 1 fixture", "%s or %s is missing (run test_swat from the repository root)", ck, ev);
        return;
    }
    const double want_a = 2.808051000984888, want_b = 4.4139025448156257, want_c = 2.8067908905448866;
    Model m;
    checkpoint_load(ck, &m, NULL);
    Shard sh;
    shard_load(&sh, ev, m.cfg.V);
    int slopes_ok = m.cfg.version == 1 && m.cfg.bos == -1 && m.cfg.H == 6 && m.slopes[0] == -0.5f &&
                    m.slopes[2] == -0.125f && m.slopes[3] == 0.5f && m.slopes[5] == 0.125f;
    double a = evaluate(&m, &sh, 32, 8, 0, 16, NULL, NULL, NULL);
    double b = evaluate(&m, &sh, 256, 256, 0, 4, NULL, NULL, NULL);
    double c = evaluate_stream(&m, &sh, 8, 0, 0, NULL);
    double e = fmax(fabs(a - want_a) / want_a, fmax(fabs(b - want_b) / want_b, fabs(c - want_c) / want_c));
    CHECK(slopes_ok && e < 1e-7, "version 1 fixture loads with its slopes and evaluates as the old code did",
          "slopes %g %g %g %g %g %g; E=32 W=8 %.10f, E=256 W=256 %.10f, stream W=8 %.10f; max rel err %.1e",
          m.slopes[0], m.slopes[1], m.slopes[2], m.slopes[3], m.slopes[4], m.slopes[5], a, b, c, e);
    /* the same weights read with the version 2 rule are a different model: the check above
     * would catch a loader that forgot the version */
    m.cfg.version = 2;
    alibi_slopes(&m.cfg, m.slopes);
    double a2 = evaluate(&m, &sh, 32, 8, 0, 16, NULL, NULL, NULL);
    CHECK(fabs(a2 - want_a) / want_a > 1e-5, "version 1 fixture: the version 2 slopes would change its loss",
          "%.6f with 2^(-8k/6) against %.6f with 2^-k", a2, want_a);
    /* saved again, it stays version 1 (no start token, no checksum) and loads identically */
    m.cfg.version = 1;
    alibi_slopes(&m.cfg, m.slopes);
    const char *path = tmp_path("v1_again.ckpt");
    checkpoint_save(path, &m, NULL);
    long size;
    char *raw = read_file(path, &size);
    int32_t h[18];
    if (raw) memcpy(h, raw, sizeof h);
    Model m2;
    checkpoint_load(path, &m2, NULL);
    CHECK(raw && h[1] == 1 && h[16] == 0 && h[17] == 0 && m2.cfg.version == 1 && !memcmp(m2.params, m.params, m.num_params * 4),
          "a version 1 model is saved as version 1", "header version %d, fields 16, 17: %d %d", raw ? h[1] : -1,
          raw ? h[16] : -1, raw ? h[17] : -1);
    free(raw);
    model_free(&m2);
    model_free(&m);
    free(sh.tokens);
}

/* Every byte of a checkpoint is covered by the CRC: flip bytes all over a file with trainer
 * state (header, weights, moments, trainer state) and every flip is caught. In-process, so
 * the check is on the CRC comparison itself (tests/reliability.sh checks the error message). */
static void test_checkpoint_crc_coverage(void) {
    ModelConfig cfg = make_config(11, 1, 2, 8, 12, 4, ATTN_SIGMOID, 1, 1, 1);
    cfg.bos = 10;
    Model m;
    make_random_model(&m, &cfg, 0.5, 91);
    uint64_t s = 92;
    m.adam_m = rand_floats(m.num_params, 0.1, &s);
    m.adam_v = falloc(m.num_params);
    TrainState ts = {.opt = {.lr = 1e-3, .min_lr_ratio = 0.1, .steps = 10, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8},
                     .B = 2, .T = 8, .step = 3};
    const char *path = tmp_path("crc.ckpt");
    checkpoint_save(path, &m, &ts);
    long size;
    unsigned char *raw = read_file(path, &size);
    int caught = 0, tried = 0;
    for (long pos = 0; raw && pos < size; pos += pos < 1024 ? 1 : 37) {
        if (pos == 4 || pos < 8) continue; /* magic and version are read before the CRC */
        for (int bit = 0; bit < 8; bit += 3) {
            raw[pos] ^= (unsigned char)(1 << bit);
            uint32_t stored;
            memcpy(&stored, raw + 68, 4);
            caught += image_crc((char *)raw, size) != stored;
            tried++;
            raw[pos] ^= (unsigned char)(1 << bit);
        }
    }
    CHECK(raw && tried > 3000 && caught == tried, "every single-bit change of a version 2 checkpoint changes its CRC check",
          "%d of %d flips over the %ld bytes (header, weights, moments, trainer state) caught", caught, tried, size);
    free(raw);
    model_free(&m);
}

/* The start token (spec sections 2 and 5): sequences, the loader, evaluation, streaming. */
static void test_start_token(void) {
    uint16_t tok[40];
    for (int i = 0; i < 40; i++) tok[i] = (uint16_t)(i + 1);
    int in[8], tg[8];
    make_sequence(in, tg, tok, 5, 8, 99);
    int ok = in[0] == 99;
    for (int i = 1; i < 8; i++) ok &= in[i] == tok[5 + i - 1];
    for (int i = 0; i < 8; i++) ok &= tg[i] == tok[5 + i];
    CHECK(ok, "make_sequence with a start token", "inputs [bos, t[p] .. t[p+T-2]], targets t[p .. p+T): %d %d %d .. / %d %d ..",
          in[0], in[1], in[2], tg[0], tg[1]);
    /* the loader: the cursor moves by B*T exactly as without the start token */
    Shard sh = {tok, 40};
    Loader a, b;
    loader_init(&a, &sh, 2, 4, 0, 1, 99, "test");
    loader_init(&b, &sh, 2, 4, 0, 1, -1, "test");
    int ia[8], ta[8], ib[8], tb[8];
    ok = 1;
    for (int step = 0; step < 9; step++) {
        long p = a.cursor;
        loader_next(&a, ia, ta);
        loader_next(&b, ib, tb);
        for (int s2 = 0; s2 < 2; s2++) {
            ok &= ia[s2 * 4] == 99 && ta[s2 * 4] == tok[p + s2 * 4];
            for (int i = 1; i < 4; i++) ok &= ia[s2 * 4 + i] == ib[s2 * 4 + i - 1] && ta[s2 * 4 + i] == tok[p + s2 * 4 + i];
        }
        ok &= a.cursor == b.cursor;
    }
    Loader c;
    loader_init(&c, &sh, 2, 4, 1, 5, 99, "test");
    for (int step = 0; step < 9; step++) {
        loader_next(&c, ia, ta);
        for (int s2 = 0; s2 < 2; s2++) {
            int start = ta[s2 * 4] - 1; /* tok[i] = i + 1 */
            ok &= start % 4 == 0 && ia[s2 * 4] == 99;
            for (int i = 1; i < 4; i++) ok &= ia[s2 * 4 + i] == tok[start + i - 1] && ta[s2 * 4 + i] == tok[start + i];
        }
    }
    CHECK(ok, "loader with a start token (sequential and shuffled)", "every sequence [bos, t[p] ..], targets t[p ..], the "
          "same cursor as without it");
    loader_free(&a); loader_free(&b); loader_free(&c);

    /* evaluation against the reference, and streaming against evaluation with E = N-1 */
    ModelConfig cfg = make_config(20, 2, 6, 24, 20, 4, ATTN_SOFTMAX, 3, 3, 1);
    cfg.bos = 19;
    Model m;
    make_random_model(&m, &cfg, 0.3, 93);
    double *P = to_double(m.params, m.num_params);
    uint64_t s = 94;
    long n = 16 * 4 + 3;
    uint16_t etok[16 * 4 + 3];
    random_tokens16(etok, n, 19, &s);
    Shard esh = {etok, n};
    double worst_e = 0.0;
    int cases[][2] = {{16, 4}, {16, 40}, {7, 3}, {66, 5}};
    for (int i = 0; i < 4; i++) {
        double got = evaluate(&m, &esh, cases[i][0], cases[i][1], 0, 3, NULL, NULL, NULL);
        double ref = ref_evaluate(&cfg, P, etok, n, cases[i][0], cases[i][1], 0);
        worst_e = fmax(worst_e, note(E_EVAL, fabs(got - ref) / fabs(ref)));
    }
    CHECK(worst_e < TOL_FWD, "evaluate with a start token vs the reference (H = 6, softmax 3:3)",
          "E:W 16:4 16:40 7:3 66:5, max rel err %.2e", worst_e);
    double full = evaluate(&m, &esh, (int)(n - 1), 4, 0, 1, NULL, NULL, NULL);
    double stream = evaluate_stream(&m, &esh, 4, 0, 0, NULL);
    double es = note(E_STREAM, fabs(full - stream) / fabs(full));
    CHECK(es < 1e-5, "evaluate_stream with a start token == evaluate(E = N-1)", "%.8f vs %.8f, rel err %.2e", stream, full, es);
    free(P);
    model_free(&m);
}

/* StreamingLLM's cache, computed directly: for each position p and layer, the keys are the
 * window p-w+1..p and the first K positions that have left it; each key gets its index in
 * the cache (the first K tokens, then the window: index(j) = j for a kept first token, and
 * c - (p - n) for a window key n, with the query at c = min(p, K+w-1)), RoPE rotates q and k
 * at those indices and ALiBi uses their difference. All in double, layer by layer over the
 * whole sequence. Returns the logits (n, V). */
static double *ref_stream_keep_first(const ModelConfig *c, const double *P, const int *tok, int n, int w, int K) {
    RefLayout lo = ref_layout(c);
    int C = c->C, F = c->F, V = c->V, H = c->H, D = C / H;
    size_t NC = (size_t)n * C;
    double *x = dalloc(NC), *h = dalloc(NC), *q = dalloc(NC), *k = dalloc(NC), *v = dalloc(NC), *o = dalloc(NC),
           *tmp = dalloc(NC), *g = dalloc((size_t)n * F), *u = dalloc((size_t)n * F), *act = dalloc((size_t)n * F),
           *logits = dalloc((size_t)n * V), slopes[64], qr[256], kr[256], sc[1024];
    ref_slopes(slopes, c);
    for (int p = 0; p < n; p++) memcpy(x + (size_t)p * C, P + lo.off[R_WTE] + (size_t)tok[p] * C, C * sizeof(double));
    for (int l = 0; l < c->L; l++) {
        size_t lC = (size_t)l * C, lCC = lC * C, lFC = (size_t)l * F * C;
        ref_rmsnorm(h, x, P + lo.off[R_ATTN_NORM] + lC, n, C);
        ref_linear(q, h, P + lo.off[R_WQ] + lCC, n, C, C);
        ref_linear(k, h, P + lo.off[R_WK] + lCC, n, C, C);
        ref_linear(v, h, P + lo.off[R_WV] + lCC, n, C, C);
        for (int p = 0; p < n; p++) {
            long cq = p < K + w - 1 ? p : K + w - 1;
            int keys[1024], nk = 0;
            long idx[1024];
            for (int j = 0; j < K && j < p - w + 1; j++) { keys[nk] = j; idx[nk++] = j; }
            for (int m = p - w + 1 > 0 ? p - w + 1 : 0; m <= p; m++) { keys[nk] = m; idx[nk++] = cq - (p - m); }
            for (int hh = 0; hh < H; hh++) {
                memcpy(qr, q + (size_t)p * C + hh * D, D * sizeof(double));
                if (c->rope) ref_rope(qr, 1, 1, D, 1, c->rope_theta, cq);
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j < nk; j++) {
                    memcpy(kr, k + (size_t)keys[j] * C + hh * D, D * sizeof(double));
                    if (c->rope) ref_rope(kr, 1, 1, D, 1, c->rope_theta, idx[j]);
                    double dot = 0.0;
                    for (int i = 0; i < D; i++) dot += qr[i] * kr[i];
                    sc[j] = dot / sqrt((double)D) + slopes[hh] * (double)(cq - idx[j]);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j < nk; j++) {
                    sc[j] = c->attn == ATTN_SOFTMAX ? exp(sc[j] - mx) : 1.0 / (1.0 + exp(-sc[j]));
                    sum += sc[j];
                }
                for (int i = 0; i < D; i++) {
                    double acc = 0.0;
                    for (int j = 0; j < nk; j++)
                        acc += (c->attn == ATTN_SOFTMAX ? sc[j] / sum : sc[j]) * v[(size_t)keys[j] * C + hh * D + i];
                    o[(size_t)p * C + hh * D + i] = acc;
                }
            }
        }
        ref_linear(tmp, o, P + lo.off[R_WO] + lCC, n, C, C);
        for (size_t i = 0; i < NC; i++) x[i] += tmp[i];
        ref_rmsnorm(h, x, P + lo.off[R_MLP_NORM] + lC, n, C);
        ref_linear(g, h, P + lo.off[R_WGATE] + lFC, n, C, F);
        ref_linear(u, h, P + lo.off[R_WUP] + lFC, n, C, F);
        ref_swiglu(act, g, u, (long)n * F);
        ref_linear(tmp, act, P + lo.off[R_WDOWN] + lFC, n, F, C);
        for (size_t i = 0; i < NC; i++) x[i] += tmp[i];
    }
    ref_rmsnorm(h, x, P + lo.off[R_FINAL_NORM], n, C);
    ref_linear(logits, h, P + lo.off[R_LM_HEAD], n, C, V);
    free(x); free(h); free(q); free(k); free(v); free(o); free(tmp); free(g); free(u); free(act);
    return logits;
}

/* The decoder with and without kept first positions, against the cache computed directly in
 * double; and infer_step_naive, the plain loops of one token through the model (its window in
 * step 5, the kept first keys by kept_scores_naive), against the fast decoder (infer_step_all)
 * and the same double computation: the same sums in another grouping, in every attention
 * configuration and several shapes (head widths below, at and between vector widths, windows
 * beyond 64 slots). infer_step_naive_n, the naive build's decoder of n sequences, is
 * infer_step_naive on each sequence bit for bit. */
static void test_keep_first(void) {
    struct { int attn, neg, pos, rope, w, K, L, H, C; } v[] = {
        {ATTN_SOFTMAX, 0, 0, 1, 4, 1, 2, 4, 16}, {ATTN_SOFTMAX, 2, 2, 1, 5, 3, 2, 4, 16},
        {ATTN_SIGMOID, 2, 2, 1, 4, 2, 2, 4, 16}, {ATTN_SOFTMAX, 4, 0, 0, 3, 6, 2, 4, 16},
        {ATTN_SIGMOID, 0, 4, 1, 1, 1, 2, 4, 16}, {ATTN_SIGMOID, 2, 2, 1, 4, 0, 2, 4, 16},
        {ATTN_SIGMOID, 4, 0, 0, 7, 0, 2, 4, 16}, {ATTN_SOFTMAX, 1, 2, 1, 40, 0, 2, 4, 16},
        {ATTN_SOFTMAX, 1, 1, 1, 70, 4, 1, 2, 80}, {ATTN_SIGMOID, 1, 0, 1, 66, 0, 3, 1, 12},
        {ATTN_SIGMOID, 1, 1, 0, 9, 12, 1, 3, 36}, {ATTN_SOFTMAX, 2, 1, 1, 20, 5, 2, 3, 96}};
    const int n = 90, V = 23;
    double naive_fast = 0.0, naive_ref = 0.0;
    int naive_n_same = 1;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ModelConfig cfg = make_config(V, v[i].L, v[i].H, v[i].C, 24, v[i].w, v[i].attn, v[i].neg,
                                      v[i].pos, v[i].rope);
        Model m;
        make_random_model(&m, &cfg, 0.3 * sqrt(16.0 / v[i].C), 110 + i); /* alike activations */
        double *P = to_double(m.params, m.num_params);
        uint64_t s = 120 + i;
        int tok[90], two[2];
        random_tokens(tok, n, V, &s);
        double *ref = ref_stream_keep_first(&cfg, P, tok, n, v[i].w, v[i].K);
        InferState st, naive, pair;
        infer_init(&st, &m, v[i].w, v[i].K, 1);
        infer_init(&naive, &m, v[i].w, v[i].K, 1);
        infer_init(&pair, &m, v[i].w, v[i].K, 2);
        double e = 0.0;
        for (int p = 0; p < n; p++) {
            infer_step(&st, tok[p]);
            infer_step_naive(&naive, tok[p]);
            two[0] = (tok[p] + 5) % V; /* another text, then this one */
            two[1] = tok[p];
            infer_step_naive_n(&pair, two);
            naive_n_same &= !memcmp(pair.logits + V, naive.logits, V * sizeof(float));
            e = fmax(e, rel_err_fd(st.logits, ref + (size_t)p * V, V));
            naive_fast = fmax(naive_fast, rel_err_ff(naive.logits, st.logits, V));
            naive_ref = fmax(naive_ref, rel_err_fd(naive.logits, ref + (size_t)p * V, V));
        }
        infer_free(&st);
        infer_free(&naive);
        infer_free(&pair);
        note(E_INFER, e);
        CHECK(e < 1e-4, S("--keep-first %d: infer_step vs the cache computed directly, %s, L=%d H=%d C=%d, "
                          "%d positions", v[i].K, config_desc(&cfg, v[i].w), v[i].L, v[i].H, v[i].C, n),
              "max rel err %.2e", e);
        free(ref); free(P);
        model_free(&m);
    }
    CHECK(naive_fast < 1e-5, "infer_step_naive == the fast decoder infer_step_all",
          "12 configurations (sigmoid and softmax, RoPE on and off, w = 1..70, keep-first 0..12, "
          "D = 4..40), 90 tokens each: logits max rel err %.2e", naive_fast);
    CHECK(naive_ref < 1e-4, "infer_step_naive == the cache computed directly in double", "max rel err %.2e", naive_ref);
    CHECK(naive_n_same, "infer_step_naive_n (the naive build's --samples): each sequence is infer_step_naive's",
          "2 sequences, 12 configurations, 90 tokens: %s", naive_n_same ? "identical logits" : "DIFFER");
    /* keep_first 0 is the plain ring buffer, bit for bit */
    ModelConfig cfg = make_config(V, 2, 4, 16, 24, 4, ATTN_SOFTMAX, 2, 2, 1);
    Model m;
    make_random_model(&m, &cfg, 0.3, 130);
    InferState a, b;
    infer_init(&a, &m, 4, 0, 1);
    infer_init(&b, &m, 4, 2, 1);
    int same_until = -1, differs_after = 0;
    for (int p = 0; p < 12; p++) {
        infer_step(&a, p % V);
        infer_step(&b, p % V);
        int same = !memcmp(a.logits, b.logits, (size_t)V * 4);
        if (same && same_until == p - 1) same_until = p;
        if (p >= 4 && !same) differs_after++;
    }
    CHECK(same_until == 3 && differs_after == 8, "--keep-first 2, window 4: the same as the plain ring until the first token leaves",
          "identical through position %d, different at %d of the 8 positions 4..11", same_until, differs_after);
    infer_free(&a); infer_free(&b);
    model_free(&m);
}

/* The classifier in chunks of positions (large vocabularies): the same loss, per-token losses
 * and gradients as all positions at once, for a budget that cuts B*T = 26 positions into
 * chunks of 5 (the last one partial) and of 1. */
static void test_chunked_logits(void) {
    const int V = 23, B = 2, T = 13;
    ModelConfig cfg = make_config(V, 2, 4, 16, 24, 5, ATTN_SOFTMAX, 2, 2, 1);
    Model m;
    make_random_model(&m, &cfg, 0.3, 140);
    uint64_t s = 141;
    int in[2 * 13], tg[2 * 13];
    random_tokens(in, B * T, V, &s);
    random_tokens(tg, B * T, V, &s);
    size_t np = m.num_params;
    float loss0 = model_forward(&m, in, tg, B, T, 5);
    float *losses0 = malloc(B * T * 4), *g0 = malloc(np * 4);
    memcpy(losses0, m.a.losses, B * T * 4);
    model_zero_grad(&m);
    model_backward(&m);
    memcpy(g0, m.grads, np * 4);
    int rows_all = m.a.logit_rows;
    long saved = logits_budget;
    int budgets[] = {5 * V, V};
    for (int i = 0; i < 2; i++) {
        logits_budget = budgets[i];
        activations_free(&m.a, m.cfg.L); /* sized again for the new budget */
        float loss = model_forward(&m, in, tg, B, T, 5);
        int rows = m.a.logit_rows;
        double el = fabs(loss - loss0) / fabs(loss0), ep = rel_err_ff(m.a.losses, losses0, B * T);
        model_zero_grad(&m);
        model_backward(&m);
        double eg = rel_err_ff(m.grads, g0, np);
        CHECK(rows_all == B * T && rows == budgets[i] / V && el < 1e-6 && ep < 1e-6 && eg < 1e-5,
              S("classifier in chunks of %d positions == all %d at once", rows, B * T),
              "loss %.1e, per-token losses %.1e, all gradients %.1e", el, ep, eg);
    }
    logits_budget = saved;
    free(losses0); free(g0);
    model_free(&m);
}

/* The reference kernels (the plain loops of the math) against the fast ones, in every
 * attention configuration of the model tests and the layer tests' windows: the same sums in
 * another grouping, so equal to float32 rounding. */
static void test_reference_kernels(void) {
    uint64_t s = 150;
    const int B = 2, T = 37, C = 24, H = 4;
    long NC = (long)B * T * C;
    float *q = rand_floats(NC, 1.0, &s), *k = rand_floats(NC, 1.0, &s), *v = rand_floats(NC, 1.0, &s),
          *dout = rand_floats(NC, 1.0, &s);
    int windows[] = {1, 5, 32, 37, 50};
    int splits[][2] = {{2, 2}, {4, 0}, {0, 4}, {0, 0}, {1, 2}};
    double worst = 0.0;
    int cases = 0;
    for (int mode = 0; mode < 2; mode++)
        for (int si = 0; si < 5; si++)
            for (int wi = 0; wi < 5; wi++) {
                ModelConfig cfg = make_config(10, 1, H, C, 8, windows[wi], mode, splits[si][0], splits[si][1], 1);
                float slopes[4];
                alibi_slopes(&cfg, slopes);
                int W = windows[wi], Wb = band_width(W, T);
                long NA = (long)B * H * T * Wb;
                float *o1 = falloc(NC), *o2 = falloc(NC), *a1 = falloc(NA), *a2 = falloc(NA);
                float *g1 = falloc(3 * NC), *g2 = falloc(3 * NC);
                attention_forward_ctx(o1, a1, q, k, v, slopes, B, T, 0, C, H, W, mode);
                attention_forward_naive(o2, a2, q, k, v, slopes, B, T, 0, C, H, W, mode);
                attention_backward(g1, g1 + NC, g1 + 2 * NC, dout, a1, q, k, v, B, T, C, H, W, mode);
                attention_backward_naive(g2, g2 + NC, g2 + 2 * NC, dout, a2, q, k, v, B, T, C, H, W, mode);
                double e = fmax(rel_err_ff(o1, o2, NC), fmax(rel_err_ff(a1, a2, NA), rel_err_ff(g1, g2, 3 * NC)));
                if (!(e <= worst)) worst = e;
                cases++;
                free(o1); free(o2); free(a1); free(a2); free(g1); free(g2);
            }
    CHECK(worst < 1e-5, "attention_forward/backward == attention_forward_naive/backward_naive",
          "%d configurations (sigmoid and softmax; ALiBi 2:2 4:0 0:4 0:0 1:2; w = 1, 5, 32, 37, 50 with T = 37): "
          "output, weights and dq dk dv, max rel err %.2e", cases, worst);
    /* with ctx keys of earlier positions before the queries (evaluation in blocks) */
    double ctx_worst = 0.0;
    for (int mode = 0; mode < 2; mode++)
        for (int ctx = 1; ctx <= 45; ctx += 22) {
            ModelConfig cfg = make_config(10, 1, H, C, 8, 16, mode, 2, 2, 1);
            float slopes[4];
            alibi_slopes(&cfg, slopes);
            long NK = (long)B * (ctx + T) * C, NA = (long)B * H * T * band_width(16, ctx + T);
            float *kc = rand_floats(NK, 1.0, &s), *vc = rand_floats(NK, 1.0, &s);
            float *o1 = falloc(NC), *o2 = falloc(NC), *a1 = falloc(NA), *a2 = falloc(NA);
            attention_forward_ctx(o1, a1, q, kc, vc, slopes, B, T, ctx, C, H, 16, mode);
            attention_forward_naive(o2, a2, q, kc, vc, slopes, B, T, ctx, C, H, 16, mode);
            double e = fmax(rel_err_ff(o1, o2, NC), rel_err_ff(a1, a2, NA));
            if (!(e <= ctx_worst)) ctx_worst = e;
            free(kc); free(vc); free(o1); free(o2); free(a1); free(a2);
        }
    CHECK(ctx_worst < 1e-5, "attention_forward_ctx == attention_forward_naive with context keys",
          "ctx = 1, 23, 45 before T = 37 queries, w = 16, sigmoid and softmax: max rel err %.2e",
          ctx_worst);
    free(q); free(k); free(v); free(dout);
    int shapes[][3] = {{7, 13, 9}, {203, 70, 45}, {33, 300, 20}, {1100, 20, 9}};
    worst = 0.0;
    for (int i = 0; i < 4; i++) {
        int N = shapes[i][0], IN = shapes[i][1], OUT = shapes[i][2];
        float *x = rand_floats((size_t)N * IN, 1.0, &s), *Wm = rand_floats((size_t)OUT * IN, 1.0, &s),
              *dy = rand_floats((size_t)N * OUT, 1.0, &s);
        float *y1 = falloc((size_t)N * OUT), *y2 = falloc((size_t)N * OUT);
        float *dx1 = rand_floats((size_t)N * IN, 1.0, &s), *dx2 = falloc((size_t)N * IN);
        float *dW1 = falloc((size_t)OUT * IN), *dW2 = falloc((size_t)OUT * IN);
        memcpy(dx2, dx1, (size_t)N * IN * 4);
        matmul_forward(y1, x, Wm, N, IN, OUT);
        matmul_forward_naive(y2, x, Wm, N, IN, OUT);
        matmul_backward(dx1, dW1, dy, x, Wm, N, IN, OUT, i % 2);
        matmul_backward_naive(dx2, dW2, dy, x, Wm, N, IN, OUT, i % 2);
        double e = fmax(rel_err_ff(y1, y2, (size_t)N * OUT), fmax(rel_err_ff(dx1, dx2, (size_t)N * IN), rel_err_ff(dW1, dW2, (size_t)OUT * IN)));
        if (!(e <= worst)) worst = e;
        free(x); free(Wm); free(dy); free(y1); free(y2); free(dx1); free(dx2); free(dW1); free(dW2);
    }
    CHECK(worst < 1e-5, "matmul_forward/backward == matmul_forward_naive/backward_naive",
          "4 shapes up to 1100 x 300, add = 0 and 1: max rel err %.2e", worst);
}

/* The other layers' plain loops (libm's expf, one running sum) against their fast versions
 * (exp_approx, sums in lanes, threads): the same sums, equal to float32 rounding. */
static void test_reference_layers(void) {
    uint64_t s = 151;
    const int N = 67, C = 40, V = 300;
    int tokens[67];
    for (int t = 0; t < N; t++) tokens[t] = (int)(rng_next(&s) % 9); /* repeats: sums into rows */
    float *x = rand_floats((size_t)N * C, 1.0, &s), *gain = rand_floats(C, 1.0, &s);
    float *dy = rand_floats((size_t)N * C, 1.0, &s), *wte = rand_floats((size_t)9 * C, 1.0, &s);
    float *y1 = falloc((size_t)N * C), *y2 = falloc((size_t)N * C), *r1 = falloc(N), *r2 = falloc(N);
    float *dx1 = rand_floats((size_t)N * C, 1.0, &s), *dx2 = falloc((size_t)N * C);
    float *dg1 = falloc(C), *dg2 = falloc(C), *dw1 = falloc((size_t)9 * C), *dw2 = falloc((size_t)9 * C);
    memcpy(dx2, dx1, (size_t)N * C * 4);
    embedding_forward(y1, tokens, wte, N, C);
    embedding_forward_naive(y2, tokens, wte, N, C);
    embedding_backward(dw1, dy, tokens, N, C);
    embedding_backward_naive(dw2, dy, tokens, N, C);
    double emb = fmax(rel_err_ff(y1, y2, (size_t)N * C), rel_err_ff(dw1, dw2, (size_t)9 * C));
    rmsnorm_forward(y1, r1, x, gain, N, C);
    rmsnorm_forward_naive(y2, r2, x, gain, N, C);
    rmsnorm_backward(dx1, dg1, dy, x, gain, r1, N, C);
    rmsnorm_backward_naive(dx2, dg2, dy, x, gain, r2, N, C);
    double norm = fmax(fmax(rel_err_ff(y1, y2, (size_t)N * C), rel_err_ff(r1, r2, N)),
                       fmax(rel_err_ff(dx1, dx2, (size_t)N * C), rel_err_ff(dg1, dg2, C)));
    float *o1 = falloc((size_t)N * C), *o2 = falloc((size_t)N * C); /* gate x, up dy */
    swiglu_forward(o1, x, dy, (long)N * C);
    swiglu_forward_naive(o2, x, dy, (long)N * C);
    double glu = rel_err_ff(o1, o2, (size_t)N * C);
    for (int add = 0; add < 2; add++) { /* the gradient dx1 into (dgate, dup) = (y, du) */
        float *du1 = rand_floats((size_t)N * C, 1.0, &s), *du2 = falloc((size_t)N * C);
        memcpy(du2, du1, (size_t)N * C * 4);
        memcpy(y2, y1, (size_t)N * C * 4);
        swiglu_backward(y1, du1, dx1, x, dy, (long)N * C, add);
        swiglu_backward_naive(y2, du2, dx1, x, dy, (long)N * C, add);
        glu = fmax(glu, fmax(rel_err_ff(y1, y2, (size_t)N * C), rel_err_ff(du1, du2, (size_t)N * C)));
        free(du1); free(du2);
    }
    free(o1); free(o2);
    float *z = rand_floats((size_t)N * V, 4.0, &s), *l1 = falloc(N), *l2 = falloc(N);
    float *dz1 = rand_floats((size_t)N * V, 1.0, &s), *dz2 = falloc((size_t)N * V);
    int targets[67];
    for (int t = 0; t < N; t++) targets[t] = (int)(rng_next(&s) % V);
    crossentropy_forward(l1, z, targets, N, V);
    crossentropy_forward_naive(l2, z, targets, N, V);
    double ce = rel_err_ff(l1, l2, N);
    for (int add = 1; add >= 0; add--) {
        memcpy(dz2, dz1, (size_t)N * V * 4);
        crossentropy_backward(dz1, z, targets, 1.0f / N, N, V, add);
        crossentropy_backward_naive(dz2, z, targets, 1.0f / N, N, V, add);
        ce = fmax(ce, rel_err_ff(dz1, dz2, (size_t)N * V));
    }
    CHECK(emb < 1e-6 && norm < 1e-5 && glu < 1e-5 && ce < 1e-5,
          "embedding, RMSNorm, SwiGLU, cross-entropy == their _naive plain loops",
          "forward and backward, add = 0 and 1: max rel err %.1e %.1e %.1e %.1e", emb, norm, glu, ce);
    free(x); free(gain); free(dy); free(wte); free(y1); free(y2); free(r1); free(r2); free(dx1);
    free(dx2); free(dg1); free(dg2); free(dw1); free(dw2); free(z); free(l1); free(l2); free(dz1);
    free(dz2);
}

static void test_lr_schedule(void) {
    /* warmup 0 and one step: exactly lr, for many values of lr */
    int exact = 1;
    uint64_t s = 81;
    double lrs[] = {3e-4, 1e-3, 2e-3, 6e-4, 0.1, 1.0};
    for (int i = 0; i < 206; i++) {
        double lr = i < 6 ? lrs[i] : pow(10.0, -5 + 4 * trng_unif(&s));
        OptimConfig o = {.lr = lr, .min_lr_ratio = 0.1, .warmup = 0, .steps = 1};
        exact &= lr_at_step(&o, 0) == lr;
    }
    CHECK(exact, "lr: warmup 0, one step gives exactly lr", "206 values of lr, bitwise");
    OptimConfig o = {.lr = 1.0, .min_lr_ratio = 0.1, .warmup = 4, .steps = 10};
    double w[4] = {lr_at_step(&o, 0), lr_at_step(&o, 1), lr_at_step(&o, 2), lr_at_step(&o, 3)};
    CHECK(w[0] == 0.25 && w[1] == 0.5 && w[2] == 0.75 && w[3] == 1.0 && lr_at_step(&o, 4) == 1.0,
          "lr: linear warmup lr*(s+1)/warmup, then exactly lr", "%g %g %g %g, step 4: %g", w[0], w[1], w[2], w[3], lr_at_step(&o, 4));
    /* cosine: min_lr + 0.5 (lr - min_lr)(1 + cos(pi (s-warmup)/(steps-warmup))) */
    double emax = 0.0;
    int mono = 1, above = 1;
    OptimConfig o2 = {.lr = 3e-3, .min_lr_ratio = 0.1, .warmup = 10, .steps = 100};
    double prev = INFINITY, floor = 3e-4;
    for (int st = 10; st < 100; st++) {
        double got = lr_at_step(&o2, st);
        double want = floor + 0.5 * (3e-3 - floor) * (1 + cos(M_PI * (st - 10) / 90.0));
        if (fabs(got - want) > emax) emax = fabs(got - want);
        mono &= got <= prev;
        above &= got > floor;
        prev = got;
    }
    CHECK(emax < 1e-15 && mono && above, "lr: cosine decay after warmup",
          "max |lr - formula| %.1e; non-increasing; last step %.6e stays above the floor %.1e", emax, lr_at_step(&o2, 99), floor);
    OptimConfig o3 = {.lr = 1e-3, .min_lr_ratio = 0.0, .warmup = 0, .steps = 2};
    CHECK(lr_at_step(&o3, 0) == 1e-3 && lr_at_step(&o3, 1) > 0 && lr_at_step(&o3, 1) < 1e-3,
          "lr: two steps, floor 0", "%g then %g (the floor is reached only after the run)", lr_at_step(&o3, 0), lr_at_step(&o3, 1));
}

/* One AdamW step from a known state against the formula in double. */
static void test_adamw(void) {
    ModelConfig cfg = make_config(5, 1, 2, 4, 6, 3, ATTN_SIGMOID, 1, 1, 1);
    RefLayout lo = ref_layout(&cfg);
    /* the last case has a global norm ~2e-5, where the 1e-6 in clip/(norm+1e-6) matters */
    struct { double clip_factor, gstd; const char *what; } cases[] = {
        {0, 0.3, "clip off"}, {0.5, 0.3, "clipping active"}, {2.0, 0.3, "clip inactive"}, {0.5, 3e-7, "clipping a tiny norm"}};
    for (int c = 0; c < 4; c++) {
        Model m;
        make_random_model(&m, &cfg, 0.5, 91);
        size_t P = m.num_params;
        uint64_t s = 92;
        double gs = cases[c].gstd;
        for (size_t i = 0; i < P; i++) m.grads[i] = (float)(gs * trng_normal(&s));
        m.adam_m = rand_floats(P, gs / 6, &s);
        m.adam_v = falloc(P);
        for (size_t i = 0; i < P; i++) m.adam_v[i] = (float)(gs * gs * (0.1 * trng_unif(&s) + 1e-3));
        double *p0 = to_double(m.params, P), *g0 = to_double(m.grads, P), *m0 = to_double(m.adam_m, P),
               *v0 = to_double(m.adam_v, P);
        double norm_ref = 0.0;
        for (size_t i = 0; i < P; i++) norm_ref += g0[i] * g0[i];
        norm_ref = sqrt(norm_ref);
        double norm = grad_norm(m.grads, P);
        OptimConfig o = {.lr = 0.01, .min_lr_ratio = 0.1, .warmup = 0, .steps = 10, .beta1 = 0.9, .beta2 = 0.95,
                         .eps = 1e-8, .weight_decay = 0.1, .clip = cases[c].clip_factor * norm_ref};
        int step = 3; /* t = 4 */
        double lr = 0.007;
        adamw_step(&m, &o, step, lr, norm);
        double coef = o.clip > 0 && o.clip / (norm_ref + 1e-6) < 1 ? o.clip / (norm_ref + 1e-6) : 1.0;
        double bc1 = 1 - pow(0.9, step + 1), bc2 = 1 - pow(0.95, step + 1);
        double *pe = dalloc(P), *me = dalloc(P), *ve = dalloc(P);
        for (int t = 0; t < R_NT; t++)
            for (size_t j = lo.off[t]; j < lo.off[t] + lo.size[t]; j++) {
                double g = g0[j] * coef;
                me[j] = 0.9 * m0[j] + 0.1 * g;
                ve[j] = 0.95 * v0[j] + 0.05 * g * g;
                double p = p0[j] * (ref_is_gain(t) ? 1.0 : 1.0 - lr * o.weight_decay);
                pe[j] = p - lr / bc1 * me[j] / (sqrt(ve[j]) / sqrt(bc2) + o.eps);
            }
        double en = fabs(norm - norm_ref) / norm_ref;
        double ep = note(E_ADAMW, rel_err_fd(m.params, pe, P)), em = note(E_ADAMW, rel_err_fd(m.adam_m, me, P)),
               ev = note(E_ADAMW, rel_err_fd(m.adam_v, ve, P));
        CHECK(en < 1e-12 && ep < 1e-6 && em < 1e-6 && ev < 1e-6, S("adamw_step t=4 from a known state, %s", cases[c].what),
              "grad_norm %.1e (norm %.2g); params %.1e, m %.1e, v %.1e (coef %.4f)", en, norm_ref, ep, em, ev, coef);
        free(p0); free(g0); free(m0); free(v0); free(pe); free(me); free(ve);
        model_free(&m);
    }
    /* zero gradients and zero moments: only the decay acts, and only on matrices */
    Model m;
    make_random_model(&m, &cfg, 0.5, 93);
    float *p0 = malloc(m.num_params * 4);
    memcpy(p0, m.params, m.num_params * 4);
    OptimConfig o = {.lr = 0.05, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.2, .steps = 1};
    adamw_step(&m, &o, 0, 0.05, 0.0);
    int ok = 1;
    for (int t = 0; t < R_NT; t++)
        for (size_t j = lo.off[t]; j < lo.off[t] + lo.size[t]; j++) {
            double want = ref_is_gain(t) ? p0[j] : p0[j] * (1 - 0.05 * 0.2);
            ok &= fabs(m.params[j] - want) <= 1e-7 * fabs(want);
        }
    CHECK(ok, "adamw_step: weight decay on matrices only", "gains (attn_norm, mlp_norm, final_norm) untouched, others *(1-lr*wd)");
    model_free(&m);
    /* the first step from fresh moments is lr * g/(|g| + eps), i.e. lr*sign(g) */
    make_random_model(&m, &cfg, 0.5, 94);
    memcpy(p0, m.params, m.num_params * 4);
    uint64_t s = 95;
    for (size_t i = 0; i < m.num_params; i++) m.grads[i] = (float)(trng_normal(&s) * 1e-3);
    OptimConfig o1 = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .steps = 1};
    adamw_step(&m, &o1, 0, 1e-3, grad_norm(m.grads, m.num_params));
    double emax = 0.0;
    for (size_t i = 0; i < m.num_params; i++) {
        double g = m.grads[i], want = p0[i] - 1e-3 * g / (fabs(g) + 1e-8);
        double e = fabs(m.params[i] - want) / 1e-3;
        if (e > emax) emax = e;
    }
    CHECK(emax < 1e-3, "adamw_step: first step is lr*sign(g)", "max |dp - lr*g/(|g|+eps)| / lr = %.1e", emax);
    free(p0);
    model_free(&m);
}

static void test_loader(void) {
    /* unshuffled: the spec's cursor, simulated independently */
    long sizes[] = {25, 24, 33, 17, 100};
    for (int si = 0; si < 5; si++) {
        long n = sizes[si];
        uint16_t *tok = malloc(n * 2);
        for (long i = 0; i < n; i++) tok[i] = (uint16_t)(i * 7 % 1000);
        Shard sh = {tok, n};
        int B = 2, T = 4, in[8], tg[8], ok = 1;
        Loader ld;
        loader_init(&ld, &sh, B, T, 0, 1, -1, "test");
        long p = 0;
        char starts[256];
        int len = 0;
        for (int step = 0; step < 12; step++) {
            loader_next(&ld, in, tg);
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++) {
                    ok &= in[b * T + t] == tok[p + b * T + t];
                    ok &= tg[b * T + t] == tok[p + b * T + t + 1];
                }
            if (step < 6) len += snprintf(starts + len, sizeof starts - len, "%s%ld", step ? "," : "", p);
            p += B * T;
            if (n - p < B * T + 1) p = 0;
        }
        CHECK(ok, S("loader unshuffled, N=%ld, B=2, T=4", n), "12 batches exactly per spec section 5, starts %s,...", starts);
        loader_free(&ld);
        free(tok);
    }
    /* the README example: N = 25, B*T = 8 -> 0, 8, 16, 0, 8 */
    {
        uint16_t tok[25];
        for (int i = 0; i < 25; i++) tok[i] = (uint16_t)i;
        Shard sh = {tok, 25};
        Loader ld;
        loader_init(&ld, &sh, 2, 4, 0, 1, -1, "test");
        int in[8], tg[8], got[5];
        for (int i = 0; i < 5; i++) { loader_next(&ld, in, tg); got[i] = in[0]; }
        CHECK(got[0] == 0 && got[1] == 8 && got[2] == 16 && got[3] == 0 && got[4] == 8, "loader wrap (dev README example)",
              "starts %d %d %d %d %d", got[0], got[1], got[2], got[3], got[4]);
        loader_free(&ld);
    }
    /* shuffled: every sequence once per epoch, contents right, deterministic for a seed */
    long n = 12 * 5 + 1; /* 12 sequences of T=5, B=3: 4 batches per epoch */
    uint16_t tok[12 * 5 + 1];
    for (long i = 0; i < n; i++) tok[i] = (uint16_t)(i * 13 % 997);
    Shard sh = {tok, n};
    int B = 3, T = 5, in[15], tg[15];
    Loader a, b, c;
    loader_init(&a, &sh, B, T, 1, 7, -1, "test");
    loader_init(&b, &sh, B, T, 1, 7, -1, "test");
    loader_init(&c, &sh, B, T, 1, 8, -1, "test");
    int ok = 1, same = 1, differs = 0, epochs_differ = 0, order[3][12];
    for (int ep = 0; ep < 3; ep++) {
        int seen[12] = {0};
        for (int bt = 0; bt < 4; bt++) {
            int in2[15], tg2[15], in3[15], tg3[15];
            loader_next(&a, in, tg);
            loader_next(&b, in2, tg2);
            loader_next(&c, in3, tg3);
            same &= !memcmp(in, in2, sizeof in) && !memcmp(tg, tg2, sizeof tg);
            differs |= memcmp(in, in3, sizeof in) != 0;
            for (int s = 0; s < B; s++) {
                int seq = -1;
                for (int q = 0; q < 12; q++) if (in[s * T] == tok[q * T] && in[s * T + 1] == tok[q * T + 1]) seq = q;
                if (seq < 0) { ok = 0; continue; }
                seen[seq]++;
                order[ep][bt * B + s] = seq;
                for (int t = 0; t < T; t++) ok &= in[s * T + t] == tok[seq * T + t] && tg[s * T + t] == tok[seq * T + t + 1];
            }
        }
        for (int q = 0; q < 12; q++) ok &= seen[q] == 1;
    }
    epochs_differ = memcmp(order[0], order[1], sizeof order[0]) || memcmp(order[1], order[2], sizeof order[0]);
    CHECK(ok, "loader shuffled: every sequence exactly once per epoch", "3 epochs of 12 sequences (T=5, B=3), inputs and targets checked");
    CHECK(same && differs && epochs_differ, "loader shuffled: deterministic for a seed",
          "same seed identical: %d; another seed differs: %d; epochs reshuffled: %d", same, differs, epochs_differ);
    loader_free(&a); loader_free(&b); loader_free(&c);
    /* 12 sequences with B=5: a partial batch is skipped, nothing repeats within an epoch */
    Loader d;
    loader_init(&d, &sh, 5, T, 1, 3, -1, "test");
    int in5[25], tg5[25], rep_ok = 1;
    for (int ep = 0; ep < 3; ep++) {
        int seen[12] = {0};
        for (int bt = 0; bt < 2; bt++) {
            loader_next(&d, in5, tg5);
            for (int s = 0; s < 5; s++)
                for (int q = 0; q < 12; q++)
                    if (in5[s * T] == tok[q * T] && in5[s * T + 1] == tok[q * T + 1]) seen[q]++;
        }
        for (int q = 0; q < 12; q++) rep_ok &= seen[q] <= 1;
    }
    CHECK(rep_ok, "loader shuffled, 12 sequences, B=5", "no sequence repeats within an epoch (the partial batch is skipped)");
    loader_free(&d);
}

/* The numeric checks above run on one thread; this shows that more threads change no bit of
 * the forward, backward, grad_norm, AdamW step and evaluation. The sizes make the matmul,
 * attention and norm loops split over several threads. */
static void test_determinism(void) {
#ifdef _OPENMP
    ModelConfig cfg = make_config(64, 2, 4, 64, 96, 7, ATTN_SIGMOID, 2, 2, 1);
    int B = 3, T = 400; /* B*T = 1200 positions: the weight gradients take gemm's K-sliced path */
    static int in[1200], tg[1200];
    uint64_t s = 102;
    random_tokens(in, B * T, cfg.V, &s);
    random_tokens(tg, B * T, cfg.V, &s);
    uint16_t tok[1201];
    random_tokens16(tok, 1201, cfg.V, &s);
    Shard sh = {tok, 1201};
    OptimConfig o = {.lr = 1e-2, .min_lr_ratio = 0.1, .warmup = 0, .steps = 5, .beta1 = 0.9, .beta2 = 0.95,
                     .eps = 1e-8, .weight_decay = 0.1, .clip = 1.0};
    int saved = omp_get_max_threads(), threads[3] = {1, 2, 3};
    float *g[3], *z[3], *p[3], loss[3];
    double norm[3], ev[3];
    size_t np = 0;
    for (int r = 0; r < 3; r++) {
        omp_set_num_threads(threads[r]);
        Model m;
        make_random_model(&m, &cfg, 0.1, 101);
        np = m.num_params;
        loss[r] = model_forward(&m, in, tg, B, T, cfg.window);
        model_zero_grad(&m);
        model_backward(&m);
        norm[r] = grad_norm(m.grads, np);
        g[r] = malloc(np * 4);
        memcpy(g[r], m.grads, np * 4);
        z[r] = malloc((size_t)B * T * cfg.V * 4);
        memcpy(z[r], m.a.logits, (size_t)B * T * cfg.V * 4);
        adamw_step(&m, &o, 0, lr_at_step(&o, 0), norm[r]);
        p[r] = malloc(np * 4);
        memcpy(p[r], m.params, np * 4);
        ev[r] = evaluate(&m, &sh, 100, 5, 0, 4, NULL, NULL, NULL);
        model_free(&m);
    }
    omp_set_num_threads(saved);
    int ok = 1;
    for (int r = 1; r < 3; r++)
        ok &= !memcmp(g[0], g[r], np * 4) && !memcmp(z[0], z[r], (size_t)B * T * cfg.V * 4) && loss[0] == loss[r] &&
              norm[0] == norm[r] && !memcmp(p[0], p[r], np * 4) && ev[0] == ev[r];
    CHECK(ok, "bit-identical results with 1, 2 and 3 OpenMP threads",
          "logits, loss, all %zu gradients, grad_norm, params after an AdamW step, evaluate() compared bitwise", np);
    for (int r = 0; r < 3; r++) { free(g[r]); free(z[r]); free(p[r]); }
#else
    printf("SKIPPED: built without OpenMP, thread-count determinism not tested (build with -fopenmp)\n");
    skip("bit-identical results with 1 and 2 OpenMP threads", "built without -fopenmp");
#endif
}

/* Text-like bytes: sentences from a small vocabulary of words. */
static long make_text(uint16_t *tok, long n, uint64_t seed) {
    static const char *words[] = {"the", "cat", "sat", "on", "mat", "dog", "ran", "to", "park", "a", "bird",
                                  "sang", "in", "tree", "and", "fox", "jumped", "over", "fence", "sun"};
    uint64_t s = seed;
    long i = 0;
    while (i < n) {
        int len = 4 + trng_int(&s, 5);
        for (int w = 0; w < len && i < n; w++) {
            const char *word = words[trng_int(&s, 20)];
            for (const char *c = word; *c && i < n; c++) tok[i++] = (uint8_t)*c;
            if (i < n) tok[i++] = w + 1 < len ? ' ' : '.';
        }
        if (i < n) tok[i++] = '\n';
    }
    return n;
}

static void test_training(void) {
    ModelConfig cfg = make_config(256, 2, 4, 32, 64, 8, ATTN_SIGMOID, 2, 2, 1);
    Model m;
    model_create(&m, &cfg);
    param_init(&cfg, m.params, 1);
    long n = 8000;
    uint16_t *tok = malloc(n * 2);
    make_text(tok, n, 5);
    Shard sh = {tok, n};
    Loader ld;
    int B = 4, T = 32, steps = 60, in[128], tg[128];
    loader_init(&ld, &sh, B, T, 1, 1, -1, "train");
    OptimConfig o = {.lr = 1e-2, .min_lr_ratio = 0.1, .warmup = 5, .steps = steps, .beta1 = 0.9, .beta2 = 0.95,
                     .eps = 1e-8, .weight_decay = 0.1, .clip = 1.0};
    double first = 0, last = 0;
    int finite = 1;
    for (int step = 0; step < steps; step++) {
        loader_next(&ld, in, tg);
        float loss = model_forward(&m, in, tg, B, T, cfg.window);
        model_zero_grad(&m);
        model_backward(&m);
        double norm = grad_norm(m.grads, m.num_params);
        finite &= isfinite(loss) && isfinite(norm);
        adamw_step(&m, &o, step, lr_at_step(&o, step), norm);
        if (step < 3) first += loss / 3;
        if (step >= steps - 5) last += loss / 5;
    }
    CHECK(finite && last < 0.5 * first, S("short training run (%d steps on text-like bytes)", steps),
          "loss %.3f (mean of first 3 steps) -> %.3f (mean of last 5); required below half", first, last);
    loader_free(&ld);
    free(tok);
    model_free(&m);
}

/* ========================================================================================== */
/* 6. the trainer binary as a subprocess                                                      */
/* ========================================================================================== */

static const char *bin_path(void) {
    const char *b = getenv("SWAT_BIN");
    return b && *b ? b : "./train_swat";
}

typedef struct {
    int status; /* exit status; 128+signal if killed */
    char out[1 << 16], err[4096];
    int err_lines;
} RunResult;
static RunResult run_res;

static RunResult *run_trainer(const char *fmt, ...) {
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    RunResult *r = &run_res;
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s %s </dev/null >%s/run.out 2>%s/run.err", bin_path(), args, scratch, scratch);
    int st = system(cmd);
    r->status = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    long size;
    char *b = read_file(tmp_path("run.out"), &size);
    r->out[0] = 0;
    if (b) { snprintf(r->out, sizeof r->out, "%.*s", (int)size, b); free(b); }
    b = read_file(tmp_path("run.err"), &size);
    r->err[0] = 0;
    if (b) { snprintf(r->err, sizeof r->err, "%.*s", (int)size, b); free(b); }
    r->err_lines = 0;
    size_t len = strlen(r->err);
    for (size_t i = 0; i < len; i++) r->err_lines += r->err[i] == '\n';
    if (len && r->err[len - 1] != '\n') r->err_lines++;
    return r;
}

static int contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return 1;
    }
    return 0;
}

/* Each argument after the command is "a|b|c": the error line must contain one of the
 * alternatives (case-insensitive); all arguments must be satisfied. NULL ends the list. */
static void expect_error(const char *name, const char *args, ...) {
    RunResult *r = run_trainer("%s", args);
    int ok = r->status >= 1 && r->status < 128 && r->err_lines == 1;
    va_list ap;
    va_start(ap, args);
    const char *spec;
    char missing[256] = "";
    while ((spec = va_arg(ap, const char *))) {
        char alt[256];
        snprintf(alt, sizeof alt, "%s", spec);
        int any = 0;
        for (char *tok = strtok(alt, "|"); tok; tok = strtok(NULL, "|")) any |= contains_ci(r->err, tok);
        if (!any && !missing[0]) snprintf(missing, sizeof missing, "; does not mention '%s'", spec);
        ok &= any;
    }
    va_end(ap);
    char line[300];
    snprintf(line, sizeof line, "%.299s", r->err);
    line[strcspn(line, "\n")] = 0;
    CHECK(ok, S("cli error: %s", name), "exit %d, %d stderr line%s: %s%s", r->status, r->err_lines,
          r->err_lines == 1 ? "" : "s", line, missing);
}

static void write_bytes(const char *path, const void *data, long n) {
    FILE *f = fopen(path, "wb");
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* A copy of the checkpoint at src with header int `idx` set to `value` */
/* Copy a checkpoint with header field idx set to value and, unless the field is the CRC
 * itself or the file is not version 2, the CRC made right again: so that the check behind
 * the CRC is the one that has to catch the bad value. */
static void corrupt_header(const char *src, const char *dst, int idx, int32_t value) {
    long size;
    char *b = read_file(src, &size);
    memcpy(b + 4 * idx, &value, 4);
    int32_t version;
    memcpy(&version, b + 4, 4);
    if (idx != 17 && version == 2 && size >= 1024) {
        uint32_t crc = image_crc(b, size);
        memcpy(b + 68, &crc, 4);
    }
    write_bytes(dst, b, size);
    free(b);
}

#define SMALL_MODEL "--vocab 256 --layers 2 --heads 4 --dim 16 --ffn 32 --window 4 --seq 16"
#define SMALL_MODEL2 "--layers 2 --heads 4 --dim 16 --ffn 32 --window 4 --seq 16" /* without the vocabulary */

static void test_cli_errors(const char *train) {
    const char *d = scratch;
    /* shards */
    write_bytes(tmp_path("empty.bin"), "", 0);
    int32_t hdr[128] = {20240520, 1, 100};
    write_bytes(tmp_path("short_header.bin"), hdr, 500);
    uint16_t tok[100];
    for (int i = 0; i < 100; i++) tok[i] = (uint16_t)(97 + i % 26);
    write_shard_file(tmp_path("short_tokens.bin"), tok, 60, 20240520, 1, 100);
    write_shard_file(tmp_path("magic.bin"), tok, 100, 20240521, 1, 100);
    write_shard_file(tmp_path("version.bin"), tok, 100, 20240520, 2, 100);
    tok[37] = 256;
    write_shard_file(tmp_path("bigtoken.bin"), tok, 100, 20240520, 1, 100);
    const char *run = "--steps 2 --warmup 0 --batch 2 " SMALL_MODEL " --val-every 0 --sample-every 0";
    expect_error("missing train file", S("--train %s/nope.bin --out %s/o %s", d, d, run), "nope.bin", "cannot open|no such|not found", NULL);
    expect_error("empty train file", S("--train %s/empty.bin --out %s/o %s", d, d, run), "empty.bin", "empty", NULL);
    expect_error("shard with a truncated header", S("--train %s/short_header.bin --out %s/o %s", d, d, run), "short_header.bin",
                 "truncated|short|header", NULL);
    expect_error("shard with fewer tokens than its header says", S("--train %s/short_tokens.bin --out %s/o %s", d, d, run),
                 "short_tokens.bin", "truncated|promises|size|bytes", NULL);
    expect_error("shard with wrong magic", S("--train %s/magic.bin --out %s/o %s", d, d, run), "magic.bin", "magic|not a token shard", NULL);
    expect_error("shard with wrong version", S("--train %s/version.bin --out %s/o %s", d, d, run), "version", NULL);
    expect_error("shard token >= V", S("--train %s/bigtoken.bin --out %s/o %s", d, d, run), "bigtoken.bin", "256", "vocab", NULL);
    /* checkpoints */
    ModelConfig cfg = make_config(256, 1, 2, 8, 8, 4, ATTN_SIGMOID, 1, 1, 1);
    Model m;
    make_random_model(&m, &cfg, 0.1, 111);
    const char *good = tmp_path("good.ckpt");
    checkpoint_save(good, &m, NULL);
    long size;
    char *b = read_file(good, &size);
    write_bytes(tmp_path("trunc.ckpt"), b, size - 100);
    write_bytes(tmp_path("trunc_header.ckpt"), b, 600);
    write_bytes(tmp_path("empty.ckpt"), b, 0);
    free(b);
    model_free(&m);
    char ev[1100];
    snprintf(ev, sizeof ev, "--eval %s", train);
    expect_error("checkpoint missing", S("--init %s/none.ckpt %s", d, ev), "none.ckpt", "cannot open|no such", NULL);
    expect_error("checkpoint empty", S("--init %s/empty.ckpt %s", d, ev), "empty.ckpt", "empty|truncated", NULL);
    expect_error("checkpoint truncated (parameters)", S("--init %s/trunc.ckpt %s", d, ev), "trunc.ckpt", "bytes|truncated|size", NULL);
    expect_error("checkpoint truncated (header)", S("--init %s/trunc_header.ckpt %s", d, ev), "trunc_header.ckpt", "truncated|header", NULL);
    corrupt_header(good, tmp_path("magic.ckpt"), 0, 0x54415754);
    expect_error("checkpoint with wrong magic", S("--init %s/magic.ckpt %s", d, ev), "magic.ckpt", "magic", NULL);
    struct { int idx; int32_t value; const char *what, *kw; } bad[] = {
        {1, 3, "version 3", "version"},
        {1, 0, "version 0", "version"},
        {16, 256, "start token 256 with vocab 256", "start token"},
        {16, -2, "start token -2", "start token"},
        {17, 12345, "a wrong CRC", "checksum mismatch"},
        {4, 3, "heads 3 do not divide dim 8", "divisible|heads"},
        {3, 0, "0 layers", "layers"},
        {2, 0, "vocab 0", "vocab"},
        {7, 0, "window 0", "window"},
        {8, 2, "attention 2", "attention"},
        {9, 2, "ALiBi 2:1 with 2 heads", "alibi"},
        {11, 2, "rope 2", "rope"},
        {14, -1, "negative step count", "step"},
        {15, 2, "field 15 = 2", "15"},
        {100, 1, "reserved field 100 set", "reserved"},
        {15, 1, "field 15 = 1 without the trainer state", "bytes|size"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        corrupt_header(good, tmp_path("bad.ckpt"), bad[i].idx, bad[i].value);
        expect_error(S("checkpoint header: %s", bad[i].what), S("--init %s/bad.ckpt %s", d, ev), "bad.ckpt", bad[i].kw, NULL);
    }
    /* flags */
    char base[2048];
    snprintf(base, sizeof base, "--train %s --out %s/o --steps 2 --warmup 0 --batch 2 --val-every 0 --sample-every 0", train, d);
    expect_error("--dim not divisible by --heads", S("%s --vocab 256 --layers 1 --heads 4 --dim 30 --ffn 8 --seq 16", base),
                 "divisible|heads", NULL);
    expect_error("--rope on with an odd head width", S("%s --vocab 256 --layers 1 --heads 4 --dim 12 --ffn 8 --seq 16 --rope on", base),
                 "rope", "even|odd", NULL);
    expect_error("--window 0", S("%s " SMALL_MODEL " --window 0", base), "--window|window", NULL);
    expect_error("unknown flag", S("%s " SMALL_MODEL " --bogus 3", base), "--bogus", "unknown", NULL);
    expect_error("unknown flag as the last argument", S("%s " SMALL_MODEL " --bogus", base), "--bogus", "unknown", NULL);
    expect_error("flag missing its value", S("%s " SMALL_MODEL " --lr", base), "--lr", "value", NULL);
    expect_error("non-numeric value", S("%s " SMALL_MODEL " --lr abc", base), "--lr", "abc|number", NULL);
    expect_error("non-integer value", S("%s " SMALL_MODEL " --batch 2x", base), "--batch", "integer|2x", NULL);
    expect_error("--eval without --init", S("--eval %s", train), "--init", NULL);
    expect_error("--init with a shape flag", S("--init %s --eval %s --layers 3", good, train), "--layers", NULL);
    expect_error("--warmup longer than --steps", S("--train %s --out %s/o " SMALL_MODEL " --steps 2 --warmup 5", train, d), "warmup", NULL);
}

/* Is `text` (the binary's stdout for --generate n --prompt P --temperature 0) a greedy
 * continuation of P? Each generated byte must have the largest logit given the text before it,
 * to within 1e-4 (the binary may be built with other flags, so exact ties could break the
 * other way). The trainer prints control bytes other than newline and tab as '?'.
 * Returns n if it is, -1 if the text is not prompt + n bytes + newline, else -(i+2) for the
 * first generated byte i that is not the argmax. */
static int check_greedy(const Model *m, const char *prompt, int n, const char *text) {
    int plen = (int)strlen(prompt);
    if (strncmp(text, prompt, plen) != 0 || (int)strlen(text) != plen + n + 1 || text[plen + n] != '\n') return -1;
    InferState st;
    infer_init(&st, m, m->cfg.window, 0, 1);
    for (int i = 0; i < plen; i++) infer_step(&st, (unsigned char)prompt[i]);
    int result = n;
    for (int i = 0; i < n && result == n; i++) {
        int best = 0;
        for (int v = 1; v < m->cfg.V; v++) if (st.logits[v] > st.logits[best]) best = v;
        float tol = 1e-4f * (1.0f + fabsf(st.logits[best]));
        int ch = (unsigned char)text[plen + i], fed = -1;
        if (ch != '?') {
            if (ch < m->cfg.V && st.logits[ch] >= st.logits[best] - tol) fed = ch;
        } else if (best == '?' || (best < 32 && best != '\n' && best != '\t')) fed = best;
        if (fed < 0) result = -(i + 2);
        else if (i + 1 < n) infer_step(&st, fed);
    }
    infer_free(&st);
    return result;
}

static int files_identical(const char *a, const char *b, long *size) {
    long sa, sb;
    char *x = read_file(a, &sa), *y = read_file(b, &sb);
    int same = x && y && sa == sb && !memcmp(x, y, sa);
    *size = x ? sa : -1;
    free(x); free(y);
    return same;
}

static void test_cli_happy(const char *train_path, const uint16_t *tok, const char *eval_path, const uint16_t *etok,
                           long netok) {
    RunResult *r = run_trainer("--help");
    CHECK(r->status == 0 && strstr(r->out, "--train") && strstr(r->out, "--eval"), "cli --help", "exit %d, usage on stdout", r->status);

    /* --steps 0 --save: the initial model */
    const char *init = tmp_path("init.ckpt");
    r = run_trainer("--steps 0 --save %s " SMALL_MODEL, init);
    long size = 0;
    char *raw = read_file(init, &size);
    ModelConfig want = make_config(256, 2, 4, 16, 32, 4, ATTN_SIGMOID, 2, 2, 1);
    want.seq_len = 16;
    RefLayout lo = ref_layout(&want);
    int ok = r->status == 0 && raw && size == 1024 + 4 * (long)lo.total && header_matches_spec((int32_t *)raw, size, &want, 0, 0);
    free(raw);
    Model m;
    if (ok) {
        int has = checkpoint_load(init, &m, NULL);
        ok = has == 0 && config_equal(&m.cfg, &want);
        model_free(&m);
    }
    CHECK(ok, "cli --steps 0 --save writes the initial model", "exit %d, %ld bytes = 1024 + 4*%zu, header per spec, loads",
          r->status, size, lo.total);

    /* a 3-step run */
    const char *out = tmp_path("out");
    r = run_trainer("--train %s --val %s --out %s --steps 3 --warmup 0 --batch 2 " SMALL_MODEL " --val-every 0 --sample-every 0 --threads 1",
                    train_path, eval_path, out);
    long lsize = 0;
    char *log = read_file(S("%s/log.txt", out), &lsize);
    int steps_logged = 0;
    double final_val = NAN;
    if (log) {
        char *copy = calloc(lsize + 1, 1);
        memcpy(copy, log, lsize);
        for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
            steps_logged += !strncmp(line, "step ", 5);
            if (!strncmp(line, "final_val_loss ", 15)) final_val = atof(line + 15);
        }
        free(copy);
        free(log);
    }
    const char *ckpt = S("%s/model.ckpt", out);
    char ckpt_path[1024];
    snprintf(ckpt_path, sizeof ckpt_path, "%s", ckpt);
    raw = read_file(ckpt_path, &size);
    ok = r->status == 0 && steps_logged == 3 && raw && ((int32_t *)raw)[14] == 3 && ((int32_t *)raw)[15] == 1;
    free(raw);
    if (ok) {
        TrainState ts;
        ok = checkpoint_load(ckpt_path, &m, &ts) == 1 && ts.step == 3 && ts.B == 2 && ts.T == 16 && ts.opt.steps == 3;
        model_free(&m);
    }
    CHECK(ok, "cli 3-step training run", "exit %d; out/log.txt has %d step lines; out/model.ckpt has header [14]=3, [15]=1 and loads with its trainer state%s",
          r->status, steps_logged, r->status ? S("; stderr: %.150s", r->err) : "");
    if (!ok) return;
    Shard sh = {(uint16_t *)etok, netok};
    {
        checkpoint_load(ckpt_path, &m, NULL);
        double want_val = evaluate(&m, &sh, 16, m.cfg.window, 0, 2, NULL, NULL, NULL);
        model_free(&m);
        CHECK(fabs(final_val - want_val) < 1e-5, "cli --val: final_val_loss in log.txt",
              "logged %.6f, in-process evaluate() over all chunks of T=16 with the training window %.6f", final_val, want_val);
    }

    /* --eval against evaluate() in-process on the same checkpoint. The binary may be built
     * with other flags (FMA contraction, vector width), so the losses may differ by float
     * rounding (~1e-7 relative); 1e-5 absolute still catches any change of semantics. */
    int evals[][2] = {{20, 3}, {40, 9}};
    for (int i = 0; i < 2; i++) {
        int E = evals[i][0], W = evals[i][1];
        r = run_trainer("--init %s --eval %s --eval-len %d --eval-window %d", ckpt_path, eval_path, E, W);
        const char *p = strstr(r->out, "eval_loss ");
        double got = p ? atof(p + 10) : NAN;
        checkpoint_load(ckpt_path, &m, NULL);
        double want_loss = evaluate(&m, &sh, E, W, 0, 4, NULL, NULL, NULL);
        model_free(&m);
        CHECK(r->status == 0 && fabs(got - want_loss) < 1e-5, S("cli --eval --eval-len %d --eval-window %d (training window 4)", E, W),
              "printed %.8f, in-process evaluate() %.8f", got, want_loss);
    }
    r = run_trainer("--init %s --eval %s --stream --eval-window 4", ckpt_path, eval_path);
    {
        const char *p = strstr(r->out, "eval_loss ");
        double got = p ? atof(p + 10) : NAN;
        checkpoint_load(ckpt_path, &m, NULL);
        double want_loss = evaluate_stream(&m, &sh, 4, 0, 0, NULL);
        model_free(&m);
        CHECK(r->status == 0 && fabs(got - want_loss) < 1e-5, "cli --eval --stream", "printed %.8f, in-process evaluate_stream() %.8f", got, want_loss);
    }

    /* one AdamW step from --init: every parameter moves by about lr against its gradient */
    const double lr = 1e-3;
    const char *out2 = tmp_path("out2");
    r = run_trainer("--init %s --train %s --out %s --steps 1 --warmup 0 --wd 0 --clip 0 --shuffle off --lr %g --batch 2 --seq 16 "
                    "--val-every 0 --sample-every 0 --threads 1", ckpt_path, train_path, out2, lr);
    Model before, after;
    if (r->status != 0) {
        CHECK(0, "cli one step from --init moves params by lr*sign(-g)", "exit %d: %.200s", r->status, r->err);
        return;
    }
    checkpoint_load(ckpt_path, &before, NULL);
    checkpoint_load(S("%s/model.ckpt", out2), &after, NULL);
    int B = 2, T = 16, in[32], tg[32];
    for (int i = 0; i < B * T; i++) { in[i] = tok[i]; tg[i] = tok[i + 1]; }
    float loss = model_forward(&before, in, tg, B, T, before.cfg.window);
    model_zero_grad(&before);
    model_backward(&before);
    /* Adam's first step with wd 0 and no clipping is -lr*g/(|g|+eps): -lr*sign(g) to within
     * eps/|g| <= 1e-3 for |g| >= 1e-5, plus the float rounding of p (~1e-4 of lr). Smaller
     * gradients must still move against their sign (above 1e-7, where the binary's and this
     * process's float gradients cannot disagree in sign) and never by more than lr. */
    long checked = 0, small = 0, zero = 0, bad = 0;
    double dev = 0.0;
    for (size_t i = 0; i < before.num_params; i++) {
        double g = before.grads[i], delta = (double)after.params[i] - before.params[i];
        if (g == 0.0) { zero++; bad += delta != 0.0; continue; }
        if (fabs(g) < 1e-5) {
            small++;
            bad += fabs(delta) > 1.001 * lr || (fabs(g) > 1e-7 && delta * g > 0);
            continue;
        }
        double e = fabs(delta + lr * (g > 0 ? 1 : -1)) / lr;
        if (e > dev) dev = e;
        bad += e > 0.005;
        checked++;
    }
    /* the log's step-1 loss is the loss at the initial weights on the first unshuffled batch */
    long lsz;
    char *log2 = read_file(S("%s/log.txt", out2), &lsz);
    double logged = NAN;
    if (log2) {
        char *copy = calloc(lsz + 1, 1);
        memcpy(copy, log2, lsz);
        char *p = strstr(copy, "\nstep 1 loss ");
        if (!p && !strncmp(copy, "step 1 loss ", 12)) p = copy - 1;
        if (p) logged = atof(p + 13);
        free(copy); free(log2);
    }
    CHECK(bad == 0 && checked > (long)before.num_params / 2, "cli one step from --init moves params by lr*sign(-g)",
          "%ld params with |g| >= 1e-5 moved by -lr*sign(g) to %.1e of lr, %ld smaller ones against g by <= lr, "
          "%ld with g = 0 unchanged, %ld bad", checked, dev, small, zero, bad);
    CHECK(fabs(logged - loss) < 1e-5, "cli step-1 loss in log.txt", "logged %.6f, in-process %.6f on the first unshuffled batch", logged, loss);
    model_free(&before);
    model_free(&after);

    /* greedy generation: the binary's text equals argmax decoding through infer_step */
    r = run_trainer("--init %s --generate 40 --prompt 'the cat ' --temperature 0", ckpt_path);
    checkpoint_load(ckpt_path, &m, NULL);
    int greedy = check_greedy(&m, "the cat ", 40, r->out);
    model_free(&m);
    CHECK(r->status == 0 && greedy == 40, "cli --generate 40 --temperature 0 is greedy decoding",
          "exit %d; %s", r->status, greedy == 40 ? "prompt echoed, every generated byte is the argmax of the in-process ring-buffer logits"
                                               : greedy == -1 ? "output is not prompt + 40 bytes + newline" : S("generated byte %d is not the argmax", -greedy - 2));

    /* exact resume: 2 steps, stop, resume for 2 more == 4 steps straight (shuffled data) */
    const char *ra = tmp_path("resume_a"), *rb = tmp_path("resume_b");
    const char *common = "--steps 4 --warmup 1 --batch 2 " SMALL_MODEL " --val-every 0 --sample-every 0 --threads 1 --seed 5";
    RunResult *r1 = run_trainer("--train %s --out %s %s", train_path, ra, common);
    int st1 = r1->status;
    RunResult *r2 = run_trainer("--train %s --out %s %s --stop-after 2", train_path, rb, common);
    int st2 = r2->status;
    TrainState mid;
    int mid_step = -1;
    if (st2 == 0 && checkpoint_load(S("%s/model.ckpt", rb), &m, &mid) == 1) { mid_step = mid.step; model_free(&m); }
    RunResult *r3 = run_trainer("--resume %s/model.ckpt --train %s --out %s --val-every 0 --sample-every 0 --threads 1", rb, train_path, rb);
    int st3 = r3->status;
    long csize;
    int same = files_identical(S("%s/model.ckpt", ra), S("%s/model.ckpt", rb), &csize);
    CHECK(st1 == 0 && st2 == 0 && st3 == 0 && mid_step == 2 && same, "cli --stop-after 2 then --resume == 4 steps straight",
          "exits %d %d %d; stopped at step %d; final checkpoints (%ld bytes: params, moments, trainer state) byte-identical: %d",
          st1, st2, st3, mid_step, csize, same);
}

/* The start token, --keep-first, --sinks and version 1 checkpoints through the binary. */
static void test_cli_start_token(const char *train, const char *evalp, const uint16_t *etok, long ne) {
    const char *d = scratch, *out = tmp_path("bos_run");
    RunResult *r = run_trainer("--train %s --val %s --out %s --steps 4 --warmup 0 --batch 2 --vocab 257 --bos 256 "
                               "--layers 1 --heads 2 --dim 16 --ffn 32 --window 4 --seq 16 --val-every 2 --val-chunks 4 "
                               "--sample-every 0 --threads 1", train, evalp, out);
    const char *ck = S("%s/model.ckpt", out);
    Model m;
    int ok = r->status == 0 && access(ck, R_OK) == 0;
    long size = 0;
    char *logtext = ok ? read_file(S("%s/log.txt", out), &size) : NULL;
    int sink_lines = 0;
    for (char *p = logtext; p && (p = strstr(p, "\nsink ")); p++) sink_lines++;
    if (ok) { checkpoint_load(ck, &m, NULL); ok = m.cfg.bos == 256 && m.cfg.V == 257 && m.cfg.version == 2; }
    CHECK(ok && sink_lines == 3, "cli --vocab 257 --bos 256 trains, stores the start token, logs the sink diagnostics",
          "exit %d, bos %d, %d 'sink' lines in log.txt (validations at steps 0, 2, 4)", r->status, ok ? m.cfg.bos : -9, sink_lines);
    free(logtext);
    if (!ok) return;
    /* --eval with the start token: the binary against evaluate() in-process */
    Shard sh = {(uint16_t *)etok, ne};
    double want = evaluate(&m, &sh, 16, 4, 0, 4, NULL, NULL, NULL);
    r = run_trainer("--init %s --eval %s --eval-len 16 --eval-window 4 --sinks", ck, evalp);
    const char *el = strstr(r->out, "eval_loss ");
    double got = el ? atof(el + 10) : NAN;
    int sinks = 0;
    for (const char *p = r->out; (p = strstr(p, "sink layer ")); p++) sinks++;
    CHECK(r->status == 0 && fabs(got - want) < 1e-5 && sinks == 2 && strstr(r->out, "sink_heads "),
          "cli --eval --sinks with a start token", "printed %.8f, in-process %.8f; %d per-head lines", got, want, sinks);
    /* --stream --keep-first 1 --dump-losses: one loss per token, the mean is the printed loss */
    const char *dump = tmp_path("stream_losses.bin");
    r = run_trainer("--init %s --eval %s --stream --eval-window 4 --keep-first 1 --dump-losses %s", ck, evalp, dump);
    el = strstr(r->out, "eval_loss ");
    got = el ? atof(el + 10) : NAN;
    float *losses = read_file(dump, &size);
    double sum = 0;
    for (long i = 0; losses && i < size / 4; i++) sum += losses[i];
    InferState st; /* the same stream in-process */
    infer_init(&st, &m, 4, 1, 1);
    double ref = 0;
    for (long i = 0; i < ne - 1; i++) {
        infer_step(&st, i == 0 ? 256 : etok[i - 1]);
        float mx = max_of(st.logits, 257);
        ref += log(sum_exp(st.logits, mx, 257)) + mx - st.logits[etok[i]];
    }
    infer_free(&st);
    ref /= ne - 1;
    CHECK(r->status == 0 && size == 4 * (ne - 1) && fabs(sum / (ne - 1) - got) < 1e-5 && fabs(got - ref) < 1e-5,
          "cli --stream --keep-first 1 --dump-losses with a start token",
          "%ld losses, mean %.8f, printed %.8f, in-process %.8f", size / 4, sum / (ne - 1), got, ref);
    free(losses);
    /* --generate starts from the start token; greedy output is reproducible */
    r = run_trainer("--init %s --generate 12 --prompt ab --temperature 0 --keep-first 1", ck);
    CHECK(r->status == 0 && !strncmp(r->out, "ab", 2) && strlen(r->out) == 2 + 12 + 1, "cli --generate with a start token and --keep-first",
          "exit %d, %zu bytes of output", r->status, strlen(r->out));
    /* a disagreeing --bos, and flags out of their mode */
    expect_error("--bos that disagrees with the checkpoint", S("--init %s --eval %s --bos 3", ck, evalp), "--bos", "256", NULL);
    expect_error("--bos beyond the vocabulary", S("--train %s --out %s/o2 --steps 1 --warmup 0 --vocab 256 --bos 256 " SMALL_MODEL2, train, d),
                 "start token", NULL);
    expect_error("--keep-first without --stream", S("--init %s --eval %s --keep-first 1", ck, evalp), "--keep-first", NULL);
    expect_error("--sinks with --stream", S("--init %s --eval %s --stream --sinks", ck, evalp), "--sinks", NULL);
    model_free(&m);
    /* a version 1 model fine-tuned stays version 1, and says so */
    if (access("tests/fixtures/v1_h6.ckpt", R_OK) == 0) {
        const char *o1 = tmp_path("v1_run");
        r = run_trainer("--init tests/fixtures/v1_h6.ckpt --train %s --out %s --steps 2 --warmup 0 --batch 2 --val-every 0 "
                        "--sample-every 0", train, o1);
        Model m1;
        ok = r->status == 0 && strstr(r->out, "version 1");
        if (ok) { checkpoint_load(S("%s/model.ckpt", o1), &m1, NULL); ok = m1.cfg.version == 1 && m1.slopes[0] == -0.5f; model_free(&m1); }
        CHECK(ok, "cli --init from a version 1 checkpoint: trains, says so, saves version 1 with its slopes", "exit %d", r->status);
        expect_error("--bos with a version 1 checkpoint", S("--init tests/fixtures/v1_h6.ckpt --eval %s --bos 0", evalp),
                     "version 1", NULL);
    } else CHECK(0, "cli version 1 fixture", "tests/fixtures/v1_h6.ckpt missing (run from the repository root)");
}

/* What a new user ran into (issue 14): short runs, the final validation, --resume's folder
 * and settings, overwriting, flags outside their mode, llm.c-style data and prompts. */
static int count_lines_starting(const char *path, const char *prefix) {
    long size;
    char *t = read_file(path, &size);
    int n = 0;
    for (char *p = t; p && p < t + size; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : t + size)
        n += !strncmp(p, prefix, strlen(prefix));
    free(t);
    return n;
}

static void test_cli_new_user(const char *train, const char *evalp) {
    const char *d = scratch;
    /* a short run without --warmup fits the default warmup to it */
    RunResult *r = run_trainer("--train %s --out %s/short --steps 10 " SMALL_MODEL " --batch 2 --val-every 0 --sample-every 0", train, d);
    CHECK(r->status == 0 && strstr(r->out, "warmup: 2 steps"), "cli: --steps 10 without --warmup fits the warmup to the run",
          "exit %d; '%s'", r->status, strstr(r->out, "warmup:") ? "warmup: ... printed" : "no warmup line");
    expect_error("--warmup longer than the run says what to pass", S("--train %s --out %s/short2 --steps 10 --warmup 40 " SMALL_MODEL, train, d),
                 "--warmup 10 or less", NULL);
    /* the final validation follows --final-val-chunks, and says how long it took */
    r = run_trainer("--train %s --val %s --out %s/fv --steps 2 --warmup 0 " SMALL_MODEL " --batch 2 --val-every 0 --sample-every 0 "
                    "--final-val-chunks 3", train, evalp, d);
    int vals = count_lines_starting(S("%s/fv/log.txt", d), "val ");
    CHECK(r->status == 0 && strstr(r->out, "final validation: 3 chunks of 16 tokens in") && vals == 1,
          "cli: --val-every 0 --final-val-chunks 3: one validation, at the end, over 3 chunks, timed", "exit %d, %d val lines", r->status, vals);
    r = run_trainer("--train %s --val %s --out %s/fv2 --steps 2 --warmup 0 " SMALL_MODEL " --batch 2 --val-every 0 --sample-every 0 "
                    "--final-val-chunks -1", train, evalp, d);
    CHECK(r->status == 0 && count_lines_starting(S("%s/fv2/log.txt", d), "val ") == 0, "cli: --final-val-chunks -1 skips the final validation",
          "exit %d", r->status);
    /* --resume continues in the checkpoint's folder with the run's data and validation settings */
    const char *run = S("%s/res/run1", d);
    r = run_trainer("--train %s --val %s --out %s --steps 6 --warmup 0 " SMALL_MODEL " --batch 2 --val-every 2 --val-chunks 2 "
                    "--sample-every 0 --stop-after 3", train, evalp, run);
    int told = r->status == 0 && strstr(r->out, S("continue with: %s --resume %s/model.ckpt", bin_path(), run));
    char cwd_out[1100];
    snprintf(cwd_out, sizeof cwd_out, "%s/res/out", d);
    r = run_trainer("--resume %s/model.ckpt", run); /* nothing else: the log has the rest */
    int vals_after = count_lines_starting(S("%s/log.txt", run), "val ");
    long size;
    char *raw = read_file(S("%s/model.ckpt", run), &size);
    int32_t step = -1;
    if (raw && size > 64) memcpy(&step, raw + 56, 4);
    free(raw);
    CHECK(told && r->status == 0 && step == 6 && vals_after == 4 && access(cwd_out, F_OK) != 0,
          "cli: --resume CKPT alone continues in CKPT's folder with the run's --train, --val and --val-every",
          "'continue with' printed: %d; exit %d; checkpoint at step %d; %d val lines in the same log (steps 0, 2, 4, final)",
          told, r->status, step, vals_after);
    /* an earlier run is not overwritten unless asked */
    expect_error("a second run into the same --out", S("--train %s --out %s --steps 2 --warmup 0 " SMALL_MODEL, train, run),
                 "already holds a run", "--overwrite", "--resume", NULL);
    r = run_trainer("--train %s --out %s --steps 2 --warmup 0 " SMALL_MODEL " --batch 2 --val-every 0 --sample-every 0 --overwrite", train, run);
    CHECK(r->status == 0 && count_lines_starting(S("%s/log.txt", run), "val ") == 0, "cli: --overwrite replaces an earlier run",
          "exit %d", r->status);
    /* flags that the mode would ignore are errors naming the flag */
    char ck[1100]; /* S's buffers rotate: keep the path */
    snprintf(ck, sizeof ck, "%s/model.ckpt", run);
    expect_error("--generate with --window", S("--init %s --generate 5 --window 1", ck), "--window", "--eval-window", NULL);
    expect_error("--eval with --window", S("--init %s --eval %s --window 8", ck, evalp), "--window", "--eval-window", NULL);
    expect_error("--generate with training flags", S("--init %s --generate 5 --steps 5 --lr 1 --batch 3", ck), "--steps", "--generate", NULL);
    expect_error("--eval with --seed", S("--init %s --eval %s --seed 3", ck, evalp), "--seed", "--eval", NULL);
    expect_error("--eval with --prompt", S("--init %s --eval %s --prompt hi", ck, evalp), "--prompt", NULL);
    expect_error("training with --eval-window", S("--train %s --out %s/ew --steps 2 " SMALL_MODEL " --eval-window 4", train, d),
                 "--eval-window", NULL);
    expect_error("training with --prompt", S("--train %s --out %s/ew --steps 2 " SMALL_MODEL " --prompt hi", train, d), "--prompt", NULL);
    expect_error("--stream without --eval", S("--init %s --generate 3 --stream", ck), "--stream", NULL);
    /* --eval-window is the generation window */
    r = run_trainer("--init %s --generate 5 --eval-window 2 --prompt ab", ck);
    CHECK(r->status == 0 && strstr(r->err, "(window 2)"), "cli: --generate --eval-window 2 generates with window 2", "exit %d: %s",
          r->status, r->err);
    /* llm.c-style data: the vocabulary a shard needs, several shards by pattern, prompts as ids */
    uint16_t big[300];
    for (int i = 0; i < 300; i++) big[i] = (uint16_t)(i % 7 == 3 ? 299 : i % 40);
    write_shard(tmp_path("big_1.bin"), big, 300);
    expect_error("a token beyond --vocab names the vocabulary the data needs", S("--train %s/big_1.bin --out %s/bg " SMALL_MODEL, d, d),
                 "--vocab 300", NULL);
    uint16_t small[200];
    for (int i = 0; i < 200; i++) small[i] = (uint16_t)(i * 7 % 50);
    write_shard(tmp_path("ids_000001.bin"), small, 200);
    write_shard(tmp_path("ids_000002.bin"), small, 150);
    const char *idrun = S("%s/ids_run", d);
    r = run_trainer("--train '%s/ids_*.bin' --out %s --vocab 50 --layers 1 --heads 2 --dim 16 --ffn 32 --window 4 --seq 16 "
                    "--batch 2 --steps 3 --warmup 0 --val-every 0 --sample-every 0", d, idrun);
    CHECK(r->status == 0 && strstr(r->out, "2 shards, 350 tokens"), "cli: --train 'dir/ids_*.bin' reads both shards in order",
          "exit %d", r->status);
    r = run_trainer("--init %s/model.ckpt --generate 4 --prompt-ids \"7 14 21\" --temperature 0", idrun);
    int fields = 0, bar = 0, good = r->status == 0 && !strncmp(r->out, "7 14 21 | ", 10);
    for (char *t = strtok(r->out, " \n"); t; t = strtok(NULL, " \n")) { if (!strcmp(t, "|")) bar++; else fields++; }
    CHECK(good && bar == 1 && fields == 7, "cli: --prompt-ids prints the prompt's ids, ' | ', then the generated ids",
          "exit %d, %d ids, %d separators", r->status, fields, bar);
    expect_error("--prompt-ids beyond the vocabulary", S("--init %s/model.ckpt --generate 4 --prompt-ids \"7 50\"", idrun), "50", "vocabulary", NULL);
}

/* Tokenizer files (llm.c's format): GPT-2's decodes the committed GPT-2 shard to its text;
 * corrupt files are one-line errors; a text prompt through a subword vocabulary. */
static void write_tokenizer_file(const char *path, uint32_t version, uint32_t V, uint32_t eot, int zero_len_at,
                                 int truncate, int extra) {
    FILE *f = fopen(path, "wb");
    uint32_t h[256] = {20240328, version, V, eot};
    fwrite(h, 4, 256, f);
    for (uint32_t i = 0; i < V - (truncate ? 1 : 0); i++) {
        char text[16];
        int n = i < 256 ? 1 : snprintf(text, sizeof text, "<%u>", i);
        if (i < 256) text[0] = (char)i;
        if ((int)i == zero_len_at) n = 0;
        fputc(n, f);
        fwrite(text, 1, n, f);
    }
    if (extra) fputc('x', f);
    fclose(f);
}

static void test_tokenizer(void) {
    const char *tkp = "data/gpt2/gpt2_tokenizer.bin", *valp = "data/gpt2/val.bin", *txtp = "data/gpt2/val.txt";
    if (access(tkp, R_OK) || access(valp, R_OK) || access(txtp, R_OK)) {
        CHECK(0, "tokenizer: the GPT-2 test set", "%s, %s or %s is missing (run from the repository root)", tkp, valp, txtp);
        return;
    }
    Tokenizer tk;
    tokenizer_load(&tk, tkp);
    Shard sh;
    shard_load(&sh, valp, tk.V);
    long size, at = 0;
    char *want = read_file(txtp, &size);
    int same = want != NULL;
    for (long i = 0; same && i < sh.n; i++)
        for (long j = tk.offset[sh.tokens[i]]; same && j < tk.offset[sh.tokens[i] + 1]; j++)
            same = at < size && (char)tk.bytes[j] == want[at++];
    CHECK(tk.V == 50257 && tk.eot == 50256 && same && at == size, "tokenizer: GPT-2's file decodes the GPT-2 val shard to its text",
          "V %d, eot %d, %ld tokens -> %ld of %ld bytes equal", tk.V, tk.eot, sh.n, at, size);
    /* the greedy prompt encoding decodes to the text, and uses whole words where it can */
    const char *text = "In the beginning God created the heaven and the earth. \xc3\xa9\xe2\x96\x81!";
    int ids[128], n = tokenizer_encode(&tk, text, ids);
    char back[256];
    int bl = 0;
    for (int i = 0; i < n; i++)
        for (long j = tk.offset[ids[i]]; j < tk.offset[ids[i] + 1] && bl < 255; j++) back[bl++] = (char)tk.bytes[j];
    back[bl] = 0;
    CHECK(n > 0 && n < (int)strlen(text) / 2 && !strcmp(back, text), "tokenizer_encode: a prompt's tokens decode to the prompt",
          "%zu bytes -> %d tokens -> '%s'", strlen(text), n, back);
    free(want); free(sh.tokens);
    tokenizer_free(&tk);

    /* data/prepare_bpe.py's layout (<unk>, <s> = end-of-text 1, the bytes at 2..257, then the
     * learned pieces in merge order): "abc" is a + bc, since bc (258) merges before ab (259)
     * (longest match would give ab + c); A has no piece of its own: its byte piece 2 + 65;
     * the character é is one symbol (263); "<s>" is its bytes, never the start token; the
     * invalid byte 0xFF its byte piece 257 */
    const char *learned[] = {"bc", "ab", "a", "b", "c", "\xc3\xa9"};
    FILE *tf = fopen(tmp_path("tk_bpe.bin"), "wb");
    uint32_t th[256] = {20240328, 2, 264, 1};
    fwrite(th, 4, 256, tf);
    fputc(5, tf); fputs("<unk>", tf); fputc(3, tf); fputs("<s>", tf);
    for (int i = 0; i < 256; i++) { fputc(1, tf); fputc(i, tf); }
    for (int i = 0; i < 6; i++) { fputc((int)strlen(learned[i]), tf); fputs(learned[i], tf); }
    fclose(tf);
    tokenizer_load(&tk, tmp_path("tk_bpe.bin"));
    int bpe_ids[32], want_ids[] = {260, 258, 67, 263, 62, 117, 64, 257};
    n = tokenizer_encode(&tk, "abcA\xc3\xa9<s>\xff", bpe_ids);
    CHECK(n == 8 && !memcmp(bpe_ids, want_ids, sizeof want_ids), "tokenizer_encode: BPE in merge (id) order, as prepare_bpe encodes",
          "%d tokens: %d %d %d %d %d %d %d %d", n, bpe_ids[0], bpe_ids[1], bpe_ids[2], bpe_ids[3], bpe_ids[4], bpe_ids[5],
          bpe_ids[6], bpe_ids[7]);
    tokenizer_free(&tk);

    /* corrupt tokenizer files through the binary: one line naming the problem */
    const char *d = scratch;
    write_tokenizer_file(tmp_path("tk_ok.bin"), 1, 260, 0, -1, 0, 0);
    write_tokenizer_file(tmp_path("tk_magic.bin"), 1, 260, 0, -1, 0, 0);
    FILE *f = fopen(tmp_path("tk_magic.bin"), "r+b"); fputc(7, f); fclose(f);
    write_tokenizer_file(tmp_path("tk_version.bin"), 3, 260, 0, -1, 0, 0);
    write_tokenizer_file(tmp_path("tk_trunc.bin"), 1, 260, 0, -1, 1, 0);
    write_tokenizer_file(tmp_path("tk_zero.bin"), 1, 260, 0, 258, 0, 0);
    write_tokenizer_file(tmp_path("tk_extra.bin"), 1, 260, 0, -1, 0, 1);
    write_tokenizer_file(tmp_path("tk_eot.bin"), 2, 260, 260, -1, 0, 0);
    uint16_t tok[400];
    for (int i = 0; i < 400; i++) tok[i] = (uint16_t)(i * 37 % 260);
    write_shard(tmp_path("tk_shard.bin"), tok, 400);
    const char *run = S("%s/tk_run", d);
    RunResult *r = run_trainer("--train %s/tk_shard.bin --out %s --vocab 260 --layers 1 --heads 2 --dim 16 --ffn 32 --window 4 "
                               "--seq 16 --batch 2 --steps 3 --val-every 0 --sample-every 0", d, run);
    CHECK(r->status == 0, "cli: a V=260 model for the tokenizer checks", "exit %d", r->status);
    char ck[1100];
    snprintf(ck, sizeof ck, "%s/model.ckpt", run);
    const char *ev = S("--init %s --eval %s/tk_shard.bin --tokenizer", ck, d);
    char evb[1400];
    snprintf(evb, sizeof evb, "%s", ev);
    expect_error("tokenizer with a bad magic", S("%s %s/tk_magic.bin", evb, d), "tk_magic.bin", "not a tokenizer", NULL);
    expect_error("tokenizer version 3", S("%s %s/tk_version.bin", evb, d), "version", NULL);
    expect_error("tokenizer truncated", S("%s %s/tk_trunc.bin", evb, d), "truncated", NULL);
    expect_error("tokenizer with a zero-length token", S("%s %s/tk_zero.bin", evb, d), "length 0", NULL);
    expect_error("tokenizer with extra bytes", S("%s %s/tk_extra.bin", evb, d), "after its", NULL);
    expect_error("tokenizer end-of-text id beyond V", S("%s %s/tk_eot.bin", evb, d), "end-of-text", NULL);
    expect_error("tokenizer missing", S("%s %s/none.bin", evb, d), "none.bin", "cannot open", NULL);
    expect_error("tokenizer of another vocabulary size", S("%s %s", evb, tkp), "50257", "260", NULL);
    expect_error("a text prompt for V=260 without a tokenizer", S("--init %s --generate 3 --prompt hi", ck), "--tokenizer", NULL);
    /* nats per byte: every token of this tokenizer is one byte (ids < 256) or "<id>" */
    r = run_trainer("%s %s/tk_ok.bin --eval-len 16", evb, d);
    const char *np = strstr(r->out, "nats per byte: "), *el = strstr(r->out, "eval_loss ");
    double nats = np ? atof(np + 15) : NAN, loss = el ? atof(el + 10) : NAN, bytes = 0;
    long K = 399 / 16;
    for (long i = 1; i <= K * 16; i++) bytes += tok[i] < 256 ? 1 : (tok[i] < 1000 ? 5 : 6);
    CHECK(r->status == 0 && fabs(nats - loss * K * 16 / bytes) < 1e-5, "cli --eval --tokenizer: nats per byte",
          "printed %.6f, eval_loss * %ld predictions / %.0f bytes = %.6f", nats, K * 16, bytes, loss * K * 16 / bytes);
    /* a text prompt through the tokenizer: the output is the prompt's text, then the sample, the
     * same text as the ids of its encoding decoded (no pair of it joins into a token of this
     * file: its bytes) */
    r = run_trainer("--init %s --generate 6 --temperature 0 --prompt 'ab<258>c' --tokenizer %s/tk_ok.bin", ck, d);
    char text_out[4096];
    snprintf(text_out, sizeof text_out, "%.4000s", r->out);
    int ok1 = r->status == 0 && !strncmp(text_out, "ab<258>c", 8);
    r = run_trainer("--init %s --generate 6 --temperature 0 --prompt-ids '97 98 60 50 53 56 62 99'", ck);
    char decoded[4096] = "";
    int dl = 0, bar = 0;
    for (char *t = strtok(r->out, " \n"); t; t = strtok(NULL, " \n")) {
        if (!strcmp(t, "|")) { bar = 1; continue; }
        int id = atoi(t);
        int ch = id == '\n' || id == '\t' || id >= 32 ? id : '?'; /* as the trainer prints control bytes */
        dl += id < 256 ? snprintf(decoded + dl, sizeof decoded - dl, "%c", ch) : snprintf(decoded + dl, sizeof decoded - dl, "<%d>", id);
    }
    snprintf(decoded + dl, sizeof decoded - dl, "\n");
    CHECK(ok1 && bar && !strcmp(text_out, decoded), "cli --generate --prompt TEXT --tokenizer: the prompt's text, then the sample",
          "'%.60s' vs the ids decoded '%.60s'", text_out, decoded);
}

static void test_cli(void) {
    if (access(bin_path(), X_OK) != 0) {
        CHECK(0, "cli: trainer binary", "%s is not an executable (build it, or set SWAT_BIN)", bin_path());
        return;
    }
    long n = 4000;
    uint16_t *tok = malloc(n * 2);
    make_text(tok, n, 9);
    const char *train = tmp_path("train.bin");
    char train_path[1024];
    snprintf(train_path, sizeof train_path, "%s", train);
    write_shard(train_path, tok, n);
    long ne = 1000;
    uint16_t *etok = malloc(ne * 2);
    make_text(etok, ne, 10);
    char eval_path[1024];
    snprintf(eval_path, sizeof eval_path, "%s", tmp_path("eval.bin"));
    write_shard(eval_path, etok, ne);
    test_cli_errors(train_path);
    test_cli_happy(train_path, tok, eval_path, etok, ne);
    test_cli_start_token(train_path, eval_path, etok, ne);
    test_cli_new_user(train_path, eval_path);
    test_tokenizer();
    free(tok);
    free(etok);
}

/* ========================================================================================== */
/* 7. inference in blocks, batched decoding, threads (issue 15)                                */
/* ========================================================================================== */

/* The evaluation as it was before it went through block_forward: model_forward on `batch`
 * chunks at a time, the losses summed in chunk order. Returns the mean; losses (K*E) and the
 * sink statistics as model_forward's attention gives them. */
static double model_forward_evaluate(Model *m, const Shard *s, int E, int W, long K, int batch, float *losses,
                                     SinkStats *sinks) {
    int *in = calloc((size_t)batch * E, sizeof(int)), *tg = calloc((size_t)batch * E, sizeof(int));
    double total = 0.0;
    long at = 0;
    for (long c0 = 0; c0 < K; c0 += batch) {
        int nb = K - c0 < batch ? (int)(K - c0) : batch;
        for (int b = 0; b < nb; b++) make_sequence(in + (long)b * E, tg + (long)b * E, s->tokens, (c0 + b) * E, E, m->cfg.bos);
        model_forward(m, in, tg, nb, E, W);
        for (long i = 0; i < (long)nb * E; i++) { total += m->a.losses[i]; losses[at++] = m->a.losses[i]; }
        if (sinks) sink_stats_add(sinks, m);
    }
    free(in); free(tg);
    return total / ((double)K * E);
}

/* evaluate() with its per-token losses, read back from a temporary file */
static double evaluate_losses(Model *m, const Shard *s, int E, int W, long max_chunks, int batch, float *losses,
                              SinkStats *sinks) {
    FILE *f = tmpfile();
    long K;
    double loss = evaluate(m, s, E, W, max_chunks, batch, &K, f, sinks);
    rewind(f);
    if (fread(losses, sizeof(float), (size_t)K * E, f) != (size_t)K * E) loss = NAN;
    fclose(f);
    return loss;
}

static int sinks_equal(const SinkStats *a, const SinkStats *b) {
    size_t n = (size_t)a->L * a->H * sizeof(double);
    return a->queries == b->queries && !memcmp(a->first, b->first, n) && !memcmp(a->row_sum, b->row_sum, n) &&
           !memcmp(a->share, b->share, n);
}

/* evaluate() runs on block_forward now: bit for bit what model_forward gave, per-token losses
 * and sink statistics included, for short chunks (several in a block) and long ones (in blocks
 * of BLOCK_POSITIONS with w-1 positions of context, also with w large enough that a query
 * block's keys are summed in two k-blocks of the tile). */
static void test_block_evaluate(void) {
    struct { int attn, rope, bos, w, E; long K; int batch; } v[] = {
        {ATTN_SIGMOID, 1, -1, 6, 40, 0, 3},     {ATTN_SOFTMAX, 1, 30, 9, 100, 20, 64}, {ATTN_SIGMOID, 0, -1, 300, 1500, 2, 1},
        {ATTN_SOFTMAX, 1, 30, 40, 1030, 3, 2}, {ATTN_SIGMOID, 1, -1, 2000, 2048, 1, 1}, {ATTN_SOFTMAX, 0, -1, 1, 7, 50, 16}};
    long n = 4200;
    uint16_t *tok = malloc(n * 2);
    uint64_t s = 150;
    random_tokens16(tok, n, 30, &s);
    Shard sh = {tok, n};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ModelConfig cfg = make_config(31, 2, 4, 16, 24, v[i].w, v[i].attn, 2, 2, v[i].rope);
        cfg.bos = v[i].bos;
        Model m;
        make_random_model(&m, &cfg, 0.3, 151 + i);
        int E = v[i].E, W = v[i].w;
        long K = (n - 1) / E;
        if (v[i].K > 0 && v[i].K < K) K = v[i].K;
        float *la = malloc(K * E * 4), *lb = malloc(K * E * 4);
        SinkStats sa, sb;
        sink_stats_init(&sa, &cfg);
        sink_stats_init(&sb, &cfg);
        double a = evaluate_losses(&m, &sh, E, W, v[i].K, v[i].batch, la, &sa);
        double b = model_forward_evaluate(&m, &sh, E, W, K, v[i].batch, lb, &sb);
        CHECK(a == b && !memcmp(la, lb, K * E * 4) && sinks_equal(&sa, &sb),
              S("evaluate in blocks == model_forward bit for bit: %s%s, E=%d, %ld chunks%s", config_desc(&cfg, W),
                v[i].bos >= 0 ? ", start token" : "", E, K, E > BLOCK_POSITIONS ? " (in blocks with context)" : ""),
              "%.10f vs %.10f; per-token losses %s; sink sums %s", a, b, !memcmp(la, lb, K * E * 4) ? "identical" : "differ",
              sinks_equal(&sa, &sb) ? "identical" : "differ");
        sink_stats_free(&sa); sink_stats_free(&sb);
        free(la); free(lb);
        model_free(&m);
    }
    free(tok);
}

/* The same stream token by token through infer_step: each position's loss */
static double stream_by_tokens(const Model *m, const Shard *s, int W, long n, float *losses) {
    InferState st;
    infer_init(&st, m, n < W ? (int)n : W, 0, 1);
    double total = 0.0;
    int bos = m->cfg.bos;
    for (long i = 0; i < n; i++) {
        int input = bos < 0 ? s->tokens[i] : i == 0 ? bos : s->tokens[i - 1];
        int target = bos < 0 ? s->tokens[i + 1] : s->tokens[i];
        infer_step(&st, input);
        crossentropy_forward(&losses[i], st.logits, &target, 1, m->cfg.V);
        total += losses[i];
    }
    infer_free(&st);
    return total / n;
}

/* --stream in blocks: bit for bit evaluate() with E = N-1 (and with E = max_tokens), within
 * 1e-5 of the token-by-token stream at every position, across several blocks; its memory is
 * the context of min(w-1, N) positions per layer and one block. */
static void test_block_stream(void) {
    struct { int attn, rope, bos, w; long max_tokens; } v[] = {
        {ATTN_SIGMOID, 1, -1, 6, 0}, {ATTN_SOFTMAX, 1, 30, 4, 0}, {ATTN_SIGMOID, 0, -1, 300, 0}, {ATTN_SOFTMAX, 1, -1, 50, 1500},
        {ATTN_SIGMOID, 1, 30, 1, 0}, {ATTN_SOFTMAX, 0, 30, 5000, 1100}};
    long n = 2600;
    uint16_t *tok = malloc(n * 2);
    uint64_t s = 160;
    random_tokens16(tok, n, 30, &s);
    Shard sh = {tok, n};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ModelConfig cfg = make_config(31, 2, 4, 16, 24, v[i].w, v[i].attn, 2, 2, v[i].rope);
        cfg.bos = v[i].bos;
        Model m;
        make_random_model(&m, &cfg, 0.3, 161 + i);
        long np = v[i].max_tokens > 0 ? v[i].max_tokens : n - 1;
        float *lb = malloc(np * 4), *lt = malloc(np * 4), *le = malloc(np * 4);
        FILE *f = tmpfile();
        double blocks = evaluate_stream(&m, &sh, v[i].w, 0, v[i].max_tokens, f);
        rewind(f);
        int got = fread(lb, 4, np, f) == (size_t)np;
        fclose(f);
        double chunked = evaluate_losses(&m, &sh, (int)np, v[i].w, 1, 1, le, NULL);
        double tokens = stream_by_tokens(&m, &sh, v[i].w, np, lt);
        double worst_tok = 0.0;
        for (long j = 0; j < np; j++) worst_tok = fmax(worst_tok, fabs(lb[j] - lt[j]) / fmax(1.0, fabs(lt[j])));
        double e = note(E_STREAM, fabs(blocks - tokens) / fabs(tokens));
        CHECK(got && blocks == chunked && !memcmp(lb, le, np * 4) && e < 1e-5 && worst_tok < 1e-5,
              S("--stream in blocks, %s%s, %ld predictions: == evaluate(E = %ld) bit for bit, token by token to 1e-5",
                config_desc(&cfg, v[i].w), v[i].bos >= 0 ? ", start token" : "", np, np),
              "blocks %.10f, chunked %.10f, token by token %.10f (rel %.1e, worst position %.1e)", blocks, chunked, tokens, e,
              worst_tok);
        free(lb); free(lt); free(le);
        model_free(&m);
    }
    /* memory: w-1 keys and values per layer (or the whole text, if shorter) and one block */
    ModelConfig cfg = make_config(31, 2, 4, 16, 24, 64, ATTN_SIGMOID, 2, 2, 1);
    Model m;
    make_random_model(&m, &cfg, 0.3, 170);
    BlockState a, b;
    block_init(&a, &m, 64, BLOCK_POSITIONS, 1, 1L << 40, 0);
    block_init(&b, &m, 1 << 30, 100, 1, 100, 0);
    CHECK(a.max_context == 63 && a.rows == BLOCK_POSITIONS && b.max_context == 100, "a stream's memory: w-1 positions of context per layer and one block",
          "w=64 over 2^40 tokens: %d context rows, blocks of %d; w=2^30 over 100 tokens: %d", a.max_context, a.rows, b.max_context);
    block_free(&a); block_free(&b);
    model_free(&m);
    free(tok);
}

/* A prompt through block_forward, then decoding, against the prompt token by token: the
 * logits after the prompt and after 20 more tokens within 1e-5. The cache a prompt leaves
 * serves both decoders: infer_step_naive continues it as the fast decoder does (with kept
 * first positions, the prompt goes token by token). */
static void test_prefill(void) {
    struct { int attn, bos, w, len, keep; } v[] = {
        {ATTN_SIGMOID, -1, 5, 1, 0}, {ATTN_SOFTMAX, 30, 5, 31, 0}, {ATTN_SIGMOID, 30, 50, 1030, 0},
        {ATTN_SOFTMAX, -1, 2000, 1100, 0}, {ATTN_SIGMOID, -1, 1, 40, 0}, {ATTN_SOFTMAX, 30, 6, 40, 3}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ModelConfig cfg = make_config(31, 2, 4, 16, 24, v[i].w, v[i].attn, 2, 2, 1);
        cfg.bos = v[i].bos;
        Model m;
        make_random_model(&m, &cfg, 0.3, 180 + i);
        int len = v[i].len, extra = 20, W = v[i].w;
        int *seq = malloc((len + extra) * sizeof(int));
        uint64_t s = 190 + i;
        random_tokens(seq, len + extra, 30, &s);
        if (v[i].bos >= 0) seq[0] = v[i].bos;
        int ring = len + extra < W ? len + extra : W; /* as generate() sizes it */
        InferState a, b, naive;
        infer_init(&a, &m, ring, v[i].keep, 1);
        infer_init(&b, &m, ring, v[i].keep, 1);
        infer_init(&naive, &m, ring, v[i].keep, 1);
        infer_prefill(&a, seq, len);
        infer_prefill(&naive, seq, len);
        for (int j = 0; j < len; j++) infer_step(&b, seq[j]);
        double e0 = rel_err_ff(a.logits, b.logits, cfg.V), e1 = 0.0, e2 = 0.0;
        for (int j = len; j < len + extra; j++) {
            infer_step(&a, seq[j]);
            infer_step(&b, seq[j]);
            infer_step_naive(&naive, seq[j]);
            e1 = fmax(e1, rel_err_ff(a.logits, b.logits, cfg.V));
            e2 = fmax(e2, rel_err_ff(naive.logits, a.logits, cfg.V));
        }
        note(E_INFER, fmax(e0, e1));
        CHECK(a.pos == b.pos && e0 < 1e-5 && e1 < 1e-5 && e2 < 1e-5,
              S("prompt in blocks, then decoding == token by token: %s%s, %d-token prompt, keep first %d",
                config_desc(&cfg, W), v[i].bos >= 0 ? ", start token" : "", len, v[i].keep),
              "logits after the prompt rel err %.1e, over the next %d tokens %.1e; infer_step_naive "
              "after the same prompt %.1e", e0, extra, e1, e2);
        infer_free(&a); infer_free(&b); infer_free(&naive);
        free(seq);
        model_free(&m);
    }
}

/* --samples: N continuations decoded together are the N single runs with generators seed+i,
 * token for token, for several batch sizes (the kernels take 8 sequences at a time), with and
 * without top-k, kept first positions and a start token. */
static void test_batched_samples(void) {
    struct { int attn, bos, w, keep, samples, top_k, plen; } v[] = {
        {ATTN_SIGMOID, -1, 6, 0, 4, 0, 3}, {ATTN_SOFTMAX, 30, 6, 0, 3, 5, 40}, {ATTN_SIGMOID, -1, 9, 2, 9, 0, 12},
        {ATTN_SOFTMAX, -1, 1, 0, 2, 3, 1}, {ATTN_SIGMOID, 30, 100, 0, 17, 0, 20}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ModelConfig cfg = make_config(31, 2, 4, 16, 24, v[i].w, v[i].attn, 2, 2, 1);
        cfg.bos = v[i].bos;
        Model m;
        make_random_model(&m, &cfg, 0.5, 200 + i);
        int n = 60, N = v[i].samples, prompt[40];
        uint64_t s = 210 + i, rngs[32], one;
        random_tokens(prompt, v[i].plen, 30, &s);
        for (int j = 0; j < N; j++) rngs[j] = 77 + j;
        int *all = generate(&m, prompt, v[i].plen, n, v[i].w, v[i].keep, 0.9, v[i].top_k, rngs, N, NULL, NULL);
        int same = 1, distinct = 0;
        for (int j = 0; j < N; j++) {
            one = 77 + j;
            int *single = generate(&m, prompt, v[i].plen, n, v[i].w, v[i].keep, 0.9, v[i].top_k, &one, 1, NULL, NULL);
            same &= !memcmp(single, all + (size_t)j * n, n * sizeof(int)) && one == rngs[j];
            distinct += j > 0 && memcmp(all, all + (size_t)j * n, n * sizeof(int)) != 0;
            free(single);
        }
        CHECK(same && distinct == N - 1, S("--samples %d == %d single runs with seeds 77.., %s%s, keep first %d, top-k %d", N, N,
                                           config_desc(&cfg, v[i].w), v[i].bos >= 0 ? ", start token" : "", v[i].keep, v[i].top_k),
              "%d x %d tokens %s; %d of the other samples differ from the first", N, n, same ? "identical" : "DIFFER", distinct);
        free(all);
        model_free(&m);
    }
}

/* Decoding, prompts in blocks and streams on 1, 2 and 3 threads (small models forced onto the
 * parallel path): the same bits; and the decode's thread choice changes nothing. */
static void test_infer_threads(void) {
#ifdef _OPENMP
    ModelConfig cfg = make_config(67, 2, 4, 32, 48, 7, ATTN_SOFTMAX, 2, 2, 1);
    cfg.bos = 66;
    Model m;
    make_random_model(&m, &cfg, 0.3, 220);
    long n = 2100;
    uint16_t *tok = malloc(n * 2);
    uint64_t s = 221;
    random_tokens16(tok, n, 66, &s);
    Shard sh = {tok, n};
    int saved = omp_get_max_threads(), prompt[1100];
    for (int i = 0; i < 1100; i++) prompt[i] = tok[i];
    float *logits[3];
    int *gen[3];
    double stream[3], chunked[3];
    for (int r = 0; r < 3; r++) {
        omp_set_num_threads(r + 1);
        InferState st;
        infer_init(&st, &m, 7, 0, 3);
        infer_prefill(&st, prompt, 1100);
        int t3[3] = {1, 2, 3};
        for (int j = 0; j < 10; j++) {
            st.use_threads = j % 2 ? 1 : 0; /* what DecodeThreads may choose */
            infer_step_all(&st, t3);
        }
        logits[r] = malloc(3 * cfg.V * 4);
        memcpy(logits[r], st.logits, 3 * cfg.V * 4);
        infer_free(&st);
        uint64_t rngs[3] = {5, 6, 7};
        gen[r] = generate(&m, prompt, 30, 200, 7, 1, 0.9, 0, rngs, 3, NULL, NULL);
        stream[r] = evaluate_stream(&m, &sh, 7, 0, 0, NULL);
        chunked[r] = evaluate(&m, &sh, 1500, 7, 0, 1, NULL, NULL, NULL);
    }
    omp_set_num_threads(saved);
    int ok = 1;
    for (int r = 1; r < 3; r++)
        ok &= !memcmp(logits[0], logits[r], 3 * cfg.V * 4) && !memcmp(gen[0], gen[r], 3 * 200 * sizeof(int)) &&
              stream[0] == stream[r] && chunked[0] == chunked[r];
    CHECK(ok, "inference bit-identical with 1, 2 and 3 threads (decoding on the parallel path, one or all threads per token)",
          "logits of 3 sequences after a 1100-token prompt in blocks and 10 tokens, 3 samples of 200 tokens with --keep-first 1, "
          "a 2099-token stream, evaluate with E=1500: %s", ok ? "identical" : "DIFFER");
    for (int r = 0; r < 3; r++) { free(logits[r]); free(gen[r]); }
    free(tok);
    model_free(&m);
#else
    skip("inference bit-identical with 1, 2 and 3 threads", "built without -fopenmp");
#endif
    /* the thread choice of decoding: one thread for the first probe, all for the second, then
     * the faster; a lost probe doubles the period */
    InferState fake;
    memset(&fake, 0, sizeof fake);
    DecodeThreads *d = &fake.decode;
    d->threads_all = 4; /* as decode_threads_init sets it for a model above decode_parallel_min */
    d->period = DECODE_PERIOD;
    int first = -1, second = -1;
    for (int k = 0; k < 2 * DECODE_PROBE + 1; k++) {
        decode_threads_before(&fake);
        if (k == 0) first = fake.use_threads;
        if (k == DECODE_PROBE) second = fake.use_threads;
    }
    CHECK(first == 1 && second == 4 && (fake.use_threads == 1 || fake.use_threads == 4) &&
          d->period == (fake.use_threads == 1 ? 2 : 1) * DECODE_PERIOD,
          "decoding's thread choice: probes one thread, then all, keeps the faster",
          "first probe %d thread(s), second %d, then %d, period %d", first, second, fake.use_threads,
          d->period);
    ModelConfig small = make_config(31, 2, 4, 16, 24, 4, ATTN_SIGMOID, 2, 2, 1);
    Model sm;
    make_random_model(&sm, &small, 0.3, 230);
    InferState st;
#ifdef _OPENMP
    int saved_threads = omp_get_max_threads();
    omp_set_num_threads(4); /* as on a machine with 4 cores */
#endif
    infer_init(&st, &sm, 4, 0, 3);
    int most = 0;
    for (int k = 0; k < 3 * DECODE_PROBE; k++) {
        decode_threads_before(&st);
        most = st.use_threads > most ? st.use_threads : most;
    }
#ifdef _OPENMP
    omp_set_num_threads(saved_threads);
#endif
    CHECK(most == 1 && st.decode.threads_all == 1,
          "decoding stays on one thread below decode_parallel_min multiply-adds a step",
          "3 sequences of a model with C=16, 4 threads: at most %d thread(s) over %d tokens", most,
          3 * DECODE_PROBE);
    infer_free(&st);
    model_free(&sm);
}

/* --samples on the command line: each sample is the output of the run with --seed seed+i */
static void test_cli_samples(void) {
    if (access(bin_path(), X_OK) != 0) return;
    char ck[1024];
    snprintf(ck, sizeof ck, "%s", tmp_path("samples.ckpt"));
    RunResult *r = run_trainer("--steps 0 --save %s " SMALL_MODEL, ck);
    if (r->status != 0) { CHECK(0, "cli --samples: a checkpoint", "exit %d: %s", r->status, r->err); return; }
    r = run_trainer("--init %s --generate 25 --samples 3 --seed 11 --prompt 'the ' --temperature 0.9 --top-k 20", ck);
    static char all[sizeof run_res.out];
    memcpy(all, r->out, sizeof all);
    int ok = r->status == 0 && strstr(r->err, "3 samples of 25 tokens") != NULL;
    for (int j = 0; j < 3 && ok; j++) {
        char head[64], *at, *next;
        snprintf(head, sizeof head, "--- sample %d of 3 (seed %d) ---\n", j + 1, 11 + j);
        at = strstr(all, head);
        if (!at) { ok = 0; break; }
        at += strlen(head);
        next = strstr(at, "\n--- sample ");
        size_t len = next ? (size_t)(next - at) : strlen(at) - 1; /* the last ends with the final newline */
        r = run_trainer("--init %s --generate 25 --seed %d --prompt 'the ' --temperature 0.9 --top-k 20", ck, 11 + j);
        ok &= r->status == 0 && strlen(r->out) == len + 1 && !strncmp(r->out, at, len);
    }
    CHECK(ok, "cli --generate 25 --samples 3 --seed 11: each sample is the run with --seed 11, 12, 13", "%s",
          ok ? "three headed blocks, each equal to a single run's output" : "the samples differ from the single runs");
    r = run_trainer("--init %s --generate 25 --samples 1 --seed 11 --prompt 'the '", ck);
    static char one[sizeof run_res.out];
    memcpy(one, r->out, sizeof one);
    r = run_trainer("--init %s --generate 25 --seed 11 --prompt 'the '", ck);
    CHECK(r->status == 0 && !strcmp(one, r->out), "cli --samples 1 prints what a plain --generate prints", "%s",
          !strcmp(one, r->out) ? "the same bytes" : "different output");
    expect_error("--samples without --generate", S("--init %s --eval %s --samples 2", ck, ck), "--samples", NULL);
}

/* ========================================================================================== */

int main(void) {
    double t0 = now_seconds();
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/swat_test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(scratch)) { printf("FAIL - mkdtemp (%s)\n", strerror(errno)); tests_failed++; print_summary(); return 1; }
#ifdef _OPENMP
    /* One thread for the numeric checks: thousands of tiny parallel regions cost little on idle
     * cores but stall at every barrier on a loaded machine (measured 4x slower). Thread-count
     * independence is checked bitwise in test_determinism(); the finite differences, one big
     * parallel region, use all threads. */
    fd_threads = omp_get_max_threads();
    omp_set_num_threads(1);
#endif

#if defined(__GNUC__) && !defined(SWAT_PLAIN_C)
    printf("# gemm register tile: %d x %d, GNU C vector extensions (%d-float vectors)\n", GEMM_MR, GEMM_NR, VEC_LEN);
#else
    printf("# gemm register tile: %d x %d, plain C loops\n", GEMM_MR, GEMM_NR);
#endif
    /* layers */
    test_exp_and_sums();
    test_nan_propagates();
    test_alibi_slopes();
    test_matmul(7, 13, 9, 1, 1);
    test_matmul(1, 5, 3, 1, 2);
    test_matmul(13, 300, 1100, 0, 3); /* crosses the KC = 256 block */
    test_matmul(203, 70, 45, 0, 4);   /* several chunks of rows, partial tiles at both edges */
    test_matmul(1100, 20, 9, 0, 5);   /* dW with K = 1100 positions: cut into slices of K */
    CHECK(gemm_slices(9, 20, 1100) == 2 && gemm_slices(64, 96, 1200) == 2 && gemm_slices(1100, 20, 9) == 1,
          "gemm cuts K into slices exactly for the weight gradients above and in the determinism check",
          "slices %d, %d, %d", gemm_slices(9, 20, 1100), gemm_slices(64, 96, 1200), gemm_slices(1100, 20, 9));
    test_embedding(5);
    test_embedding(37); /* channel blocks of 16: two full ones and a partial one */
    test_rmsnorm(6, 10);
    test_rmsnorm(6, 37);
    test_rmsnorm(150, 37); /* dg summed over three chunks of positions, the last partial */
    test_rope();
    int windows[] = {1, 3, 9, 14}; /* w = 1, w < T, w = T, w > T with T = 9 */
    for (int mode = 0; mode < 2; mode++)
        for (int i = 0; i < 4; i++) test_attention(mode, windows[i]);
    test_swiglu();
    test_crossentropy();
    /* the whole model */
    for (size_t i = 0; i < sizeof(model_variants) / sizeof(model_variants[0]); i++) test_model_variant(&model_variants[i], (int)i);
    /* PyTorch */
    test_pytorch_states();
    /* the rest */
    test_checkpoints();
    test_evaluate();
    test_dumps();
    test_sink_heads_count();
    test_inference();
    test_evaluate_stream();
    test_crc32();
    test_v1_fixture();
    test_checkpoint_crc_coverage();
    test_start_token();
    test_keep_first();
    test_chunked_logits();
    test_reference_kernels();
    test_reference_layers();
    test_lr_schedule();
    test_adamw();
    test_loader();
    test_determinism();
    test_training();
    test_block_evaluate(); /* issue 15: inference in blocks, batched decoding, threads */
    test_block_stream();
    test_prefill();
    test_batched_samples();
    test_infer_threads();
    test_cli();
    test_cli_samples();

    if (!getenv("SWAT_KEEP_TMP")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
        if (system(cmd) != 0) printf("# could not remove %s\n", scratch);
    } else printf("# scratch directory kept: %s\n", scratch);
    for (int i = 0; i < NUM_E; i++)
        if (measured[i]) printf("# max error, %s: %.2e\n", err_names[i], worst[i]);
        else printf("# max error, %s: n/a (not measured)\n", err_names[i]);
    printf("# %.1f s (finite differences on %d thread(s), the rest on 1)\n", now_seconds() - t0, fd_threads);
    print_summary();
    return tests_failed > 0;
}
