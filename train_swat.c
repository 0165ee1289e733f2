/*
 * train_swat.c: Sliding Window Attention Training (SWAT, Fu et al. 2025, arXiv 2502.18845)
 * in one C file, on the CPU: the model, its training, evaluation and generation.
 *
 * SWAT: every attention layer sees the last w tokens only, and it is trained on sequences
 * longer than w. Softmax over a short window parks spare weight on the first token it sees
 * (an "attention sink"), so SWAT scores each key on its own with a sigmoid,
 *   a(m,n) = sigmoid(q_m.k_n / sqrt(D) + slope_h * (m-n)),
 * with balanced ALiBi slopes (half the heads favour recent keys, half older ones) and RoPE.
 * Older tokens still reach a query through the layers: 1 + (w-1)*l positions after l layers.
 */

/* Read it top to bottom: the model first, the machinery that makes it fast last.
 *   1 utilities     2 the model's shape    3 parameters     4 layers: plain loops, then fast
 *   5 the model     6 one token at a time: the ring of the last w keys      7 the optimizer
 *   8 data          9 checkpoints          10 evaluation and generation in blocks
 *  11 the command line, the training step, main                         12 making it fast */

/* One letter, one meaning: B sequences in a batch, T positions in a sequence, N = B*T, C the
 * model width, H heads, D = C/H the head width, w the attention window, L layers, V the
 * vocabulary, F the SwiGLU width; W is a weight matrix. Activations are row-major (B, T, C),
 * weights (out, in) with y = x W^T. A backward ADDS into the gradients it is given (residual
 * branches just add up) unless its `add` argument is 0. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* and, where the system has it, madvise(MADV_HUGEPAGE) */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <glob.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef SWAT_MPI /* make train_swat_mpi: data-parallel training over MPI (see "data parallel") */
#include <mpi.h>
#endif
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ------------------------------------------------------------------------------------ */
/* 1. utilities                                                                          */
/* ------------------------------------------------------------------------------------ */

/* This process is rank mpi_rank of mpi_ranks (data-parallel training over MPI); without
 * -DSWAT_MPI it is rank 0 of 1 and nothing below changes. */
static int mpi_rank = 0, mpi_ranks = 1;

/* Every error is one line on stderr and a non-zero exit (under MPI it names the rank and ends
 * the whole job). Tests that include this file can redirect errors by defining SWAT_DIE_HOOK
 * before including it. */
#ifndef SWAT_DIE_HOOK
static void die(const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* one line, whatever a flag value or a path contains */
        if ((unsigned char)*p < 32 || *p == 127) *p = '?';
    if (mpi_ranks > 1) fprintf(stderr, "error: rank %d: %s\n", mpi_rank, msg);
    else fprintf(stderr, "error: %s\n", msg);
#ifdef SWAT_MPI
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down) MPI_Abort(MPI_COMM_WORLD, 1); /* the other ranks must not wait for this one */
#endif
    exit(1);
}
#else
#define die SWAT_DIE_HOOK
#endif

/* Zeroed memory aligned to a cache line (64 bytes), so that threads writing neighbouring rows
 * never share one. Blocks of 4 MB and more are aligned to 2 MB and, on Linux, asked for 2 MB
 * pages: one TLB entry instead of 512 for the activations the matrix products stream through. */
#define HUGE_PAGE (2u << 20)
static void *xcalloc(size_t count, size_t size, const char *what) {
    if (count == 0) count = 1;
    if (size && count > SIZE_MAX / size) die("%s: allocation too large", what);
    size_t bytes = count * size, align = bytes >= 2 * HUGE_PAGE ? HUGE_PAGE : 64;
    if (bytes > SIZE_MAX - align) die("%s: allocation too large", what);
    bytes = (bytes + align - 1) / align * align; /* aligned_alloc takes whole alignments */
    void *p = aligned_alloc(align, bytes);
    if (!p) die("%s: out of memory (%.1f MB)", what, (double)bytes / 1e6);
#ifdef MADV_HUGEPAGE
    if (align == HUGE_PAGE) madvise(p, bytes, MADV_HUGEPAGE); /* a hint: failing changes nothing */
#endif
    memset(p, 0, bytes);
    return p;
}

/* The directory part of a path ("." for a bare file name), as a new string. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path); /* "/x" keeps its "/" */
    char *d = xcalloc(n + 2, 1, "path");
    if (slash) memcpy(d, path, n);
    else d[0] = '.';
    return d;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* splitmix64: a tiny, well-mixed generator. The whole run is a function of --seed. */
static uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in [0, 1) */
static double rng_uniform(uint64_t *state) { return (rng_next(state) >> 11) * 0x1.0p-53; }
/* standard normal, by Box-Muller */
static double rng_normal(uint64_t *state) {
    double u1 = rng_uniform(state), u2 = rng_uniform(state);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

static int num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* y = 0 and y += x over long vectors, by all threads (one thread alone would leave the
 * others waiting). */
static void zero_floats(float *y, long n) {
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) y[i] = 0.0f;
}
static void add_floats(float *y, const float *x, long n) {
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) y[i] += x[i];
}


/* ------------------------------------------------------------------------------------ */
/* 2. the model's shape                                                                  */
/* ------------------------------------------------------------------------------------ */

enum { ATTN_SIGMOID = 0, ATTN_SOFTMAX = 1 };

typedef struct {
    int V;          /* vocabulary size (256 for bytes) */
    int L;          /* layers */
    int H;          /* attention heads */
    int C;          /* model width; head width D = C/H */
    int F;          /* SwiGLU hidden width */
    int window;     /* w: each query sees keys m-w+1..m (the training window) */
    int attn;       /* ATTN_SIGMOID (SWAT) or ATTN_SOFTMAX */
    int alibi_neg;  /* heads 0..NEG-1 get negative slopes (they favour recent keys) */
    int alibi_pos;  /* heads NEG..NEG+POS-1 get positive slopes (they favour older keys) */
    int rope;       /* 1: rotate q and k by position */
    int rope_theta; /* RoPE base, 10000 */
    int seq_len;    /* training sequence length T (informational) */
    int bos;        /* the start token that begins every sequence, or -1 for none */
    int version;    /* the checkpoint version whose meaning the model has: 2 (written now), or
                       1 (a model loaded from a version 1 file keeps its ALiBi rule) */
} ModelConfig;

/* Returns NULL if the configuration is valid, else what is wrong with it. */
static const char *config_problem(const ModelConfig *c) {
    if (c->V < 1 || c->V > 65536) return "vocabulary size must be in 1..65536 (tokens are uint16)";
    if (c->L < 1 || c->L > 4096) return "layers must be in 1..4096";
    if (c->H < 1 || c->H > 4096) return "heads must be in 1..4096";
    if (c->C < 1 || c->C > 65536) return "model width must be in 1..65536";
    if (c->C % c->H != 0) return "model width C must be divisible by the number of heads H";
    if (c->rope && (c->C / c->H) % 2 != 0) return "RoPE needs an even head width C/H";
    if (c->F < 1 || c->F > 1 << 20) return "ffn width must be in 1..1048576";
    if (c->window < 1) return "window must be >= 1";
    if (c->attn != ATTN_SIGMOID && c->attn != ATTN_SOFTMAX)
        return "attention must be sigmoid or softmax";
    if (c->alibi_neg < 0 || c->alibi_pos < 0 || c->alibi_neg > c->H - c->alibi_pos)
        return "ALiBi NEG:POS must be non-negative with NEG+POS <= heads";
    if (c->rope != 0 && c->rope != 1) return "rope must be on or off";
    if (c->rope_theta < 1) return "rope theta must be >= 1";
    if (c->seq_len < 0) return "sequence length must be >= 0";
    if (c->version != 1 && c->version != 2) return "checkpoint version must be 1 or 2";
    if (c->bos < -1 || c->bos >= c->V)
        return "the start token must be -1 (none) or an id below the vocabulary size";
    if (c->version == 1 && c->bos != -1) return "a version 1 model has no start token";
    return NULL;
}

/* The ALiBi slope of each head (doc/SPEC.md section 6, "balanced ALiBi"). The k-th head of each
 * group (k = 1, 2, ...) has the magnitude 2^(-8k/H), as in the official SWAT code and the
 * ALiBi paper: a geometric sequence from 2^(-8/H) down to 2^-8 over H heads. Version 1
 * checkpoints used 2^-k for every H (the same for H = 8), and a file keeps its meaning. */
static float alibi_magnitude(const ModelConfig *c, int k) {
    return c->version == 1 ? ldexpf(1.0f, -k) : (float)exp2(-8.0 * k / c->H);
}
static void alibi_slopes(const ModelConfig *c, float *slopes) {
    for (int h = 0; h < c->H; h++) {
        if (h < c->alibi_neg) slopes[h] = -alibi_magnitude(c, h + 1);
        else if (h < c->alibi_neg + c->alibi_pos)
            slopes[h] = alibi_magnitude(c, h - c->alibi_neg + 1);
        else slopes[h] = 0.0f;
    }
}

/* ------------------------------------------------------------------------------------ */
/* 3. parameters                                                                         */
/* ------------------------------------------------------------------------------------ */

/* The tensors in checkpoint order. Each is one contiguous slice of a single float block,
 * so the optimizer and the checkpoint code treat "all parameters" as one array. */
enum { P_WTE, P_ATTN_NORM, P_WQ, P_WK, P_WV, P_WO, P_MLP_NORM, P_W_GATE, P_W_UP, P_W_DOWN,
       P_FINAL_NORM, P_LM_HEAD, NUM_PARAM_TENSORS };
typedef struct {
    float *wte;        /* (V, C)    token embedding */
    float *attn_norm;  /* (L, C)    RMSNorm gain before attention */
    float *wq;         /* (L, C, C) query projection */
    float *wk;         /* (L, C, C) key projection */
    float *wv;         /* (L, C, C) value projection */
    float *wo;         /* (L, C, C) attention output projection */
    float *mlp_norm;   /* (L, C)    RMSNorm gain before the MLP */
    float *w_gate;     /* (L, F, C) */
    float *w_up;       /* (L, F, C) */
    float *w_down;     /* (L, C, F) */
    float *final_norm; /* (C) */
    float *lm_head;    /* (V, C)    not tied to wte */
} ParamTensors;

static const char *param_names[NUM_PARAM_TENSORS] = {
    "wte", "attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate", "w_up", "w_down",
    "final_norm", "lm_head"};

static void param_sizes(const ModelConfig *c, size_t sizes[NUM_PARAM_TENSORS]) {
    size_t V = c->V, L = c->L, C = c->C, F = c->F;
    size_t s[NUM_PARAM_TENSORS] = {V * C, L * C, L * C * C, L * C * C, L * C * C, L * C * C,
                                   L * C, L * F * C, L * F * C, L * C * F, C, V * C};
    memcpy(sizes, s, sizeof(s));
}

static size_t param_count(const ModelConfig *c) {
    size_t sizes[NUM_PARAM_TENSORS], n = 0;
    param_sizes(c, sizes);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) n += sizes[i];
    return n;
}

/* Point the tensors into a block of param_count() floats. */
static ParamTensors param_tensors(const ModelConfig *c, float *block) {
    size_t sizes[NUM_PARAM_TENSORS];
    param_sizes(c, sizes);
    float *at[NUM_PARAM_TENSORS]; /* where each tensor starts */
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        at[i] = block;
        block += sizes[i];
    }
    return (ParamTensors){at[P_WTE], at[P_ATTN_NORM], at[P_WQ], at[P_WK], at[P_WV], at[P_WO],
                          at[P_MLP_NORM], at[P_W_GATE], at[P_W_UP], at[P_W_DOWN], at[P_FINAL_NORM],
                          at[P_LM_HEAD]};
}

/* Layer l's slices of the tensors (of the weights, or of their gradients). */
typedef struct {
    float *attn_norm; /* (C) */
    float *wq;        /* (C, C) */
    float *wk;        /* (C, C) */
    float *wv;        /* (C, C) */
    float *wo;        /* (C, C) */
    float *mlp_norm;  /* (C) */
    float *w_gate;    /* (F, C) */
    float *w_up;      /* (F, C) */
    float *w_down;    /* (C, F) */
} LayerWeights;
static LayerWeights layer_weights(const ParamTensors *t, const ModelConfig *c, int l) {
    size_t C = c->C, F = c->F;
    LayerWeights w;
    w.attn_norm = t->attn_norm + l * C;
    w.wq = t->wq + l * C * C;
    w.wk = t->wk + l * C * C;
    w.wv = t->wv + l * C * C;
    w.wo = t->wo + l * C * C;
    w.mlp_norm = t->mlp_norm + l * C;
    w.w_gate = t->w_gate + l * F * C;
    w.w_up = t->w_up + l * F * C;
    w.w_down = t->w_down + l * C * F;
    return w;
}

/* Weight decay applies to matrices (embeddings included), not to the norm gains. */
static int param_is_decayed(int tensor) {
    return tensor != P_ATTN_NORM && tensor != P_MLP_NORM && tensor != P_FINAL_NORM;
}

/* Initialisation: N(0, 0.02) for matrices, with the two projections that write into the
 * residual stream (wo, w_down) scaled by 1/sqrt(2L) so the stream's variance does not grow
 * with depth (GPT-2); norm gains start at 1. */
static void param_init(const ModelConfig *c, float *block, uint64_t seed) {
    size_t sizes[NUM_PARAM_TENSORS];
    param_sizes(c, sizes);
    uint64_t rng = seed ^ 0x5357415453574154ull;
    float *p = block;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        double std = 0.02;
        if (i == P_WO || i == P_W_DOWN) std /= sqrt(2.0 * c->L);
        for (size_t j = 0; j < sizes[i]; j++)
            p[j] = param_is_decayed(i) ? (float)(std * rng_normal(&rng)) : 1.0f;
        p += sizes[i];
    }
}

/* ------------------------------------------------------------------------------------ */
/* 4. layers                                                                             */
/* ------------------------------------------------------------------------------------ */

/* Each layer comes twice: first as the plain loops of its math (`..._naive`: what the tests
 * check the fast kernels against), then the fast version of the same sums, which says only
 * how it regroups them. Forward and backward sit together. make train_swat_naive
 * (-DSWAT_NAIVE) builds a trainer whose fast kernels hand their work to the plain ones: slow,
 * but easy to step through, and none of its model math runs code of section 12. */
#ifdef SWAT_NAIVE
#define USE_REFERENCE 1
#else
#define USE_REFERENCE 0
#endif

/* sigmoid(x) = 1 / (1 + e^-x): SWAT's attention weights and SwiGLU's gate. The fast kernels
 * use exp_approx, exp in arithmetic that the compiler vectorises (section 12.1). */
static inline float exp_approx(float x);
static inline float sigmoid_naive(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

/* ---- 4.1 matrix multiplication ------------------------------------------------------
 * A linear layer is y = x W^T, W stored (OUT, IN) as nn.Linear's. Almost all of the FLOPs of
 * a step are in its three products:
 *   forward        y  = x W^T      (N, OUT) = (N, IN) (IN, OUT)
 *   backward       dx += dy W      (N, IN)  = (N, OUT) (OUT, IN)
 *                  dW += dy^T x    (OUT, IN) = (OUT, N) (N, IN) */

/* out (N, OUT) = inp (N, IN) W^T */
static void matmul_forward_naive(float *out, const float *inp, const float *W, int N, int IN,
                                 int OUT) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            float acc = 0.0f;
            for (int i = 0; i < IN; i++) acc += inp[(long)n * IN + i] * W[(long)o * IN + i];
            out[(long)n * OUT + o] = acc;
        }
}

/* In the forward pass out[n][o] = sum_i inp[n][i] W[o][i], so now
 *   dinp[n][i] (+)= sum_o dout[n][o] W[o][i]        dW[o][i] += sum_n dout[n][o] inp[n][i]
 * add = 0 overwrites dinp instead (the first gradient written into a buffer). */
static void matmul_backward_naive(float *dinp, float *dW, const float *dout, const float *inp,
                                  const float *W, int N, int IN, int OUT, int add) {
    if (dinp)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < IN; i++) {
                float acc = 0.0f;
                for (int o = 0; o < OUT; o++) acc += dout[(long)n * OUT + o] * W[(long)o * IN + i];
                dinp[(long)n * IN + i] = (add ? dinp[(long)n * IN + i] : 0.0f) + acc;
            }
    if (dW)
        for (int o = 0; o < OUT; o++)
            for (int i = 0; i < IN; i++) {
                float acc = 0.0f;
                for (int n = 0; n < N; n++) acc += dout[(long)n * OUT + o] * inp[(long)n * IN + i];
                dW[(long)o * IN + i] += acc;
            }
}

/* The fast products are one routine, gemm (section 12.2): out (M, N) (+)= A (M, K) B (K, N),
 * blocked for the caches, by all threads. It reads every matrix through a row stride and a
 * column stride, so that a transposed operand is the same matrix with its strides swapped.
 * add = 0 overwrites out. */
static void gemm(float *out, long ld_out, const float *A, long a_row, long a_col, const float *B,
                 long b_row, long b_col, int M, int N, int K, int add);

/* out = inp W^T: W^T is W read with its strides swapped */
static void matmul_forward(float *out, const float *inp, const float *W, int N, int IN, int OUT) {
    if (USE_REFERENCE) {
        matmul_forward_naive(out, inp, W, N, IN, OUT);
        return;
    }
    gemm(out, OUT, inp, IN, 1, W, 1, IN, N, OUT, IN, 0);
}

/* dinp (+)= dout W and dW += dout^T inp, dout^T read through swapped strides; either output
 * may be NULL */
static void matmul_backward(float *dinp, float *dW, const float *dout, const float *inp,
                            const float *W, int N, int IN, int OUT, int add) {
    if (USE_REFERENCE) {
        matmul_backward_naive(dinp, dW, dout, inp, W, N, IN, OUT, add);
        return;
    }
    if (dinp) gemm(dinp, IN, dout, OUT, 1, W, IN, 1, N, IN, OUT, add);
    if (dW) gemm(dW, IN, dout, 1, OUT, inp, IN, 1, OUT, IN, N, 1);
}

/* ---- 4.2 token embedding ------------------------------------------------------------
 * forward: x[t] = wte[token[t]]        backward: dwte[token[t]] += dx[t] */
static void embedding_forward_naive(float *out, const int *tokens, const float *wte, int N,
                                    int C) {
    for (int t = 0; t < N; t++)
        for (int c = 0; c < C; c++) out[(long)t * C + c] = wte[(long)tokens[t] * C + c];
}

static void embedding_backward_naive(float *dwte, const float *dout, const int *tokens, int N,
                                     int C) {
    for (int t = 0; t < N; t++)
        for (int c = 0; c < C; c++) dwte[(long)tokens[t] * C + c] += dout[(long)t * C + c];
}

/* the same copies, a row at a time by all threads */
static void embedding_forward(float *out, const int *tokens, const float *wte, int N, int C) {
    if (USE_REFERENCE) {
        embedding_forward_naive(out, tokens, wte, N, C);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < N; t++)
        memcpy(out + (long)t * C, wte + (long)tokens[t] * C, C * sizeof(float));
}

/* The same sums with the threads owning blocks of CHANNEL_BLOCK channels, so no two write
 * the same float; within a block the positions go in order, whatever the thread count. */
#define CHANNEL_BLOCK 16
static void embedding_backward(float *dwte, const float *dout, const int *tokens, int N, int C) {
    if (USE_REFERENCE) {
        embedding_backward_naive(dwte, dout, tokens, N, C);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += CHANNEL_BLOCK) {
        int c1 = c0 + CHANNEL_BLOCK < C ? c0 + CHANNEL_BLOCK : C;
        for (int t = 0; t < N; t++)
            for (int c = c0; c < c1; c++) dwte[(long)tokens[t] * C + c] += dout[(long)t * C + c];
    }
}

/* ---- 4.3 RMSNorm ---------------------------------------------------------------------
 * y = x * r * gain with r = 1/sqrt(mean(x^2) + eps), per position; gain (C) is learned.
 * With xhat = x*r, the backward ADDS (the residual stream's dx holds the other branch's):
 *   dgain += sum_t dy * xhat
 *   dx    += r * (dy*gain - xhat * mean(dy*gain*xhat))
 * (the second term removes the part of dy*gain that would change the norm of x). */
#define RMSNORM_EPS 1e-5f

/* one position: y = x * r * gain, returns r */
static inline float rmsnorm_row_naive(float *y, const float *x, const float *gain, int C) {
    float sum_sq = 0.0f;
    for (int c = 0; c < C; c++) sum_sq += x[c] * x[c];
    float r = 1.0f / sqrtf(sum_sq / C + RMSNORM_EPS);
    for (int c = 0; c < C; c++) y[c] = x[c] * r * gain[c];
    return r;
}

/* rstd (N) keeps each position's r for the backward (may be NULL) */
static void rmsnorm_forward_naive(float *out, float *rstd, const float *inp, const float *gain,
                                  int N, int C) {
    for (int t = 0; t < N; t++) {
        float r = rmsnorm_row_naive(out + (long)t * C, inp + (long)t * C, gain, C);
        if (rstd) rstd[t] = r;
    }
}

static void rmsnorm_backward_naive(float *dinp, float *dgain, const float *dout, const float *inp,
                                   const float *gain, const float *rstd, int N, int C) {
    for (int t = 0; t < N; t++) {
        const float *x = inp + (long)t * C;
        const float *dy = dout + (long)t * C;
        float *dx = dinp + (long)t * C;
        float r = rstd[t];
        float mean = 0.0f; /* mean_c dy*gain*xhat */
        for (int c = 0; c < C; c++) mean += dy[c] * gain[c] * x[c] * r;
        mean /= C;
        for (int c = 0; c < C; c++) {
            dx[c] += r * (dy[c] * gain[c] - x[c] * r * mean);
            dgain[c] += dy[c] * x[c] * r;
        }
    }
}

/* The sums over a row in SUM_LANES running sums (section 12.1): vector code, fixed order. */
#define SUM_LANES 16
static inline float dot3(const float *x, const float *y, const float *z, int n);

/* one position, its sum of squares by dot3 */
static inline float rmsnorm_row(float *y, const float *x, const float *gain, int C) {
    float r = 1.0f / sqrtf(dot3(x, x, NULL, C) / C + RMSNORM_EPS);
    for (int c = 0; c < C; c++) y[c] = x[c] * r * gain[c];
    return r;
}

static void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *gain, int N,
                            int C) {
    if (USE_REFERENCE) {
        rmsnorm_forward_naive(out, rstd, inp, gain, N, C);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < N; t++) {
        float r = rmsnorm_row(out + (long)t * C, inp + (long)t * C, gain, C);
        if (rstd) rstd[t] = r;
    }
}

/* The same sums by all threads: each chunk of TOKEN_CHUNK positions sums its own part of
 * dgain (positions in order) while it computes dx, then the parts are added in chunk order,
 * so the result does not depend on the thread count. */
#define TOKEN_CHUNK 64
enum { SCRATCH_GEMM, SCRATCH_GEMM_SLICES, SCRATCH_ATTENTION, SCRATCH_NORM, SCRATCH_RANKS,
       SCRATCH_DECODE, SCRATCH_SLOTS };
/* memory that grows and is kept between calls, one slot per user (section 12.3) */
static float *scratch_floats(int slot, size_t floats);
static void rmsnorm_backward(float *dinp, float *dgain, const float *dout, const float *inp,
                             const float *gain, const float *rstd, int N, int C) {
    if (USE_REFERENCE) {
        rmsnorm_backward_naive(dinp, dgain, dout, inp, gain, rstd, N, C);
        return;
    }
    int chunks = (N + TOKEN_CHUNK - 1) / TOKEN_CHUNK;
    float *part = scratch_floats(SCRATCH_NORM, (size_t)chunks * C); /* (chunks, C) */
    #pragma omp parallel
    {
        #pragma omp for schedule(static)
        for (int ch = 0; ch < chunks; ch++) {
            float *part_dgain = part + (size_t)ch * C;
            for (int c = 0; c < C; c++) part_dgain[c] = 0.0f;
            for (int t = ch * TOKEN_CHUNK; t < N && t < (ch + 1) * TOKEN_CHUNK; t++) {
                const float *x = inp + (long)t * C;
                const float *dy = dout + (long)t * C;
                float *dx = dinp + (long)t * C;
                float r = rstd[t];
                float mean = dot3(dy, gain, x, C) * r / C; /* mean_c dy*gain*xhat */
                for (int c = 0; c < C; c++) {
                    dx[c] += r * (dy[c] * gain[c] - x[c] * r * mean);
                    part_dgain[c] += dy[c] * x[c] * r;
                }
            }
        }
        #pragma omp for schedule(static)
        for (int c = 0; c < C; c++)
            for (int ch = 0; ch < chunks; ch++) dgain[c] += part[(size_t)ch * C + c];
    }
}

/* ---- 4.4 RoPE -------------------------------------------------------------------------
 * Each pair (x[2i], x[2i+1]) of a head vector at position p is rotated by the angle
 * a = p * theta^(-2i/D). Then q_m.k_n depends on the positions only through m-n. A
 * rotation's inverse is its transpose, so the backward rotates the gradient by -a.
 * The tables hold cos a and sin a for T positions from first_pos (computed in double). */
static void rope_tables(float *cos_t, float *sin_t, int T, int D, int theta, long first_pos) {
    for (int p = 0; p < T; p++)
        for (int i = 0; i < D / 2; i++) {
            double a = (double)(first_pos + p) * pow((double)theta, -2.0 * i / D);
            cos_t[p * (D / 2) + i] = (float)cos(a);
            sin_t[p * (D / 2) + i] = (float)sin(a);
        }
}

/* one head vector v (D) rotated in place by the angles of one table row */
static inline void rope_head(float *v, const float *cs, const float *sn, int D, float sign) {
    for (int i = 0; i < D / 2; i++) {
        float x0 = v[2 * i];
        float x1 = v[2 * i + 1];
        float c = cs[i];
        float s = sign * sn[i];
        v[2 * i] = x0 * c - x1 * s;
        v[2 * i + 1] = x0 * s + x1 * c;
    }
}

/* x (B, T, C) rotated in place, every head the same way; sign = +1 forward, -1 backward */
static void rope_rotate(float *x, const float *cos_t, const float *sin_t, int B, int T, int C,
                        int H, float sign) {
    int D = C / H;
    #pragma omp parallel for schedule(static)
    for (long bt = 0; bt < (long)B * T; bt++) {
        const float *cs = cos_t + (bt % T) * (D / 2);
        const float *sn = sin_t + (bt % T) * (D / 2);
        for (int h = 0; h < H; h++) rope_head(x + bt * C + h * D, cs, sn, D, sign);
    }
}
static void rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int C,
                         int H) {
    rope_rotate(x, cos_t, sin_t, B, T, C, H, 1.0f);
}
static void rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int C,
                          int H) {
    rope_rotate(dx, cos_t, sin_t, B, T, C, H, -1.0f);
}

/* ---- 4.5 SWAT attention ---------------------------------------------------------------
 * Query m of head h sees the keys n = m-d at distances d = 0 .. min(m, w-1):
 *   s(m,n) = q_m.k_n / sqrt(D) + slope_h * (m-n)
 *   sigmoid (SWAT): a(m,n) = sigmoid(s(m,n))     softmax: a(m,n) = exp(s) / sum_n exp(s)
 *   o_m = sum_n a(m,n) v_n
 * Only this band of keys is touched, and only the band is saved: att is (B, H, T, band) with
 * band = min(w, T), att[b][h][m][d] the weight of key m-d (0 where m-d < 0). */
static int band_width(int window, int T) { return window < T ? window : T; }

/* One query's scores s[0..n) turned into its weights, in place: a = sigmoid(s) for SWAT, each
 * key on its own, or the softmax over the n keys (subtracting the max changes nothing but
 * keeps exp in range). */
static void scores_to_weights(float *a, int n, int mode) {
    if (mode == ATTN_SIGMOID) {
        for (int j = 0; j < n; j++) a[j] = sigmoid_naive(a[j]);
        return;
    }
    float max_s = -FLT_MAX;
    float sum = 0.0f;
    for (int j = 0; j < n; j++) max_s = a[j] > max_s ? a[j] : max_s;
    for (int j = 0; j < n; j++) {
        a[j] = expf(a[j] - max_s);
        sum += a[j];
    }
    for (int j = 0; j < n; j++) a[j] /= sum;
}

/* The loops of the math, for sequence b, head h, query m, distance d (key n = m - d). In
 * training ctx = 0; evaluation in blocks (section 10) puts ctx keys and values of earlier
 * positions before each sequence's T, so k and v have ctx+T rows and query m is key ctx+m. */
static void attention_forward_naive(float *out, float *att, const float *q, const float *k,
                                    const float *v, const float *slopes, int B, int T, int ctx,
                                    int C, int H, int window, int mode) {
    int D = C / H;
    int band = band_width(window, ctx + T);
    float scale = 1.0f / sqrtf((float)D);
    float *one_row = att ? NULL : xcalloc(band, sizeof(float), "attention"); /* att not kept */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int m = 0; m < T; m++) {
                const float *q_m = q + ((long)b * T + m) * C + h * D;
                float *a = att ? att + (((long)b * H + h) * T + m) * band : one_row; /* a[d]: m-d */
                float *o_m = out + ((long)b * T + m) * C + h * D;
                long key_m = (long)b * (ctx + T) + ctx + m; /* query m's own key row */
                int seen = ctx + m + 1 < band ? ctx + m + 1 : band; /* keys m-seen+1 .. m */
                for (int d = 0; d < seen; d++) {
                    const float *k_n = k + (key_m - d) * C + h * D;
                    float dot = 0.0f;
                    for (int i = 0; i < D; i++) dot += q_m[i] * k_n[i];
                    a[d] = dot * scale + slopes[h] * (float)d;
                }
                scores_to_weights(a, seen, mode);
                for (int d = seen; d < band; d++) a[d] = 0.0f;
                for (int i = 0; i < D; i++) o_m[i] = 0.0f;
                for (int d = 0; d < seen; d++) {
                    const float *v_n = v + (key_m - d) * C + h * D;
                    for (int i = 0; i < D; i++) o_m[i] += a[d] * v_n[i];
                }
            }
    free(one_row);
}

/* The backward of attention_forward_naive in the same loops; dq, dk, dv are ADDED to.
 *   in the forward o_m = sum_d a_d v_{m-d},  so now  dv_{m-d} += a_d do_m,  da_d = do_m.v_{m-d}
 *   in the forward a_d = sigmoid(s_d),       so now  ds_d = da_d a_d (1 - a_d)
 *   (softmax: a_d = e^{s_d} / sum_j e^{s_j},  so now  ds_d = a_d (da_d - sum_j a_j da_j))
 *   in the forward s_d = q_m.k_{m-d}/sqrt(D) + slope d,
 *                       so now  dq_m += ds_d k_{m-d} / sqrt(D),  dk_{m-d} += ds_d q_m / sqrt(D)
 * (the slope is a constant: no gradient). */
static void attention_backward_naive(float *dq, float *dk, float *dv, const float *dout,
                                     const float *att, const float *q, const float *k,
                                     const float *v, int B, int T, int C, int H, int window,
                                     int mode) {
    int D = C / H;
    int band = band_width(window, T);
    float scale = 1.0f / sqrtf((float)D);
    float *ds = xcalloc(band, sizeof(float), "attention"); /* (band) da, then ds, of a query */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int m = 0; m < T; m++) {
                long row = ((long)b * T + m) * C + h * D; /* query m's head h in (B*T, C) */
                const float *a = att + (((long)b * H + h) * T + m) * band;
                int seen = m + 1 < band ? m + 1 : band;
                for (int d = 0; d < seen; d++) {
                    long n = row - (long)d * C; /* key m-d */
                    float da = 0.0f;
                    for (int i = 0; i < D; i++) {
                        dv[n + i] += a[d] * dout[row + i];
                        da += dout[row + i] * v[n + i];
                    }
                    ds[d] = da;
                }
                if (mode == ATTN_SIGMOID) {
                    for (int d = 0; d < seen; d++) ds[d] *= a[d] * (1.0f - a[d]);
                } else {
                    float a_da = 0.0f;
                    for (int d = 0; d < seen; d++) a_da += a[d] * ds[d];
                    for (int d = 0; d < seen; d++) ds[d] = a[d] * (ds[d] - a_da);
                }
                for (int d = 0; d < seen; d++) {
                    long n = row - (long)d * C;
                    for (int i = 0; i < D; i++) {
                        dq[row + i] += ds[d] * scale * k[n + i];
                        dk[n + i] += ds[d] * scale * q[row + i];
                    }
                }
            }
    free(ds);
}

/* The fast attention regroups the same sums into small matrix products. The queries go in
 * blocks of ATTN_QB; a block [m0, m1) sees the keys [m0-band+1, m1) (from 0), at most
 * QB+band-1 of them, and for that block (rows: queries, columns: its keys, oldest first)
 *   S  = Q K^T   (QB, keys), turned in place into P: the weights in the band, 0 elsewhere
 *   O  = P V     (QB, D)
 *   dP = dO V^T  (QB, keys), turned in place into dS through the weights
 *   dQ += dS K,   dK += dS^T Q,   dV += P^T dO
 * Computing the entries outside the band and dropping them (about QB/(QB+band) of them) is
 * cheaper than going one query at a time. Threads take whole (sequence, head) pairs. */
#define ATTN_QB 32

/* The two products on row-major blocks (ld: floats from one row to the next), by the calling
 * thread with gemm_scratch_floats(N) floats of scratch (section 12.2):
 *   product_ab:  out (M, N) (+)= A (M, K) B (K, N)
 *   product_atb: out (M, N) (+)= A^T B, with A stored (K, M) */
static void gemm_serial(float *out, long ld_out, const float *A, long a_row, long a_col,
                        const float *B, long b_row, long b_col, int M, int N, int K, int add,
                        float *scratch);
static size_t gemm_scratch_floats(int N);
static void product_ab(float *out, long ld_out, const float *A, long ld_a, const float *B,
                       long ld_b, int M, int N, int K, int add, float *scratch) {
    gemm_serial(out, ld_out, A, ld_a, 1, B, ld_b, 1, M, N, K, add, scratch);
}
static void product_atb(float *out, long ld_out, const float *A, long ld_a, const float *B,
                        long ld_b, int M, int N, int K, int add, float *scratch) {
    gemm_serial(out, ld_out, A, 1, ld_a, B, ld_b, 1, M, N, K, add, scratch);
}

/* The query block [m0, m1) of sequence b, head h. With ctx positions of context before the T
 * queries (in training ctx = 0; evaluation in blocks keeps earlier keys), query m is key
 * ctx+m of the ctx+T keys. */
typedef struct {
    int m1;        /* one past the block's last query */
    int first_key; /* the oldest key any query of the block sees: column 0 of S */
    int keys;      /* keys the block sees: the columns of S and P */
    long q_at;     /* offset of q[b][m0][h*D] in q (B*T, C) */
    long key_at;   /* offset of k[b][first_key][h*D] in k and v (B*(ctx+T), C) */
} AttnBlock;
static AttnBlock attention_block(int b, int h, int m0, int T, int ctx, int C, int D, int band) {
    AttnBlock blk;
    blk.m1 = m0 + ATTN_QB < T ? m0 + ATTN_QB : T;
    blk.first_key = ctx + m0 - band + 1 > 0 ? ctx + m0 - band + 1 : 0;
    blk.keys = ctx + blk.m1 - blk.first_key;
    blk.q_at = ((long)b * T + m0) * C + h * D;
    blk.key_at = ((long)b * (ctx + T) + blk.first_key) * C + h * D;
    return blk;
}

/* A query's band in a row of S: its own key (distance 0) is column `newest`, the key at
 * distance d is column newest - d, and the oldest key it sees is column `oldest`. */
typedef struct {
    int oldest;
    int newest;
    int seen; /* newest - oldest + 1 */
} BandColumns;
static BandColumns band_columns(int key, int first_key, int band) {
    BandColumns c;
    c.seen = key + 1 < band ? key + 1 : band;
    c.newest = key - first_key;
    c.oldest = c.newest - c.seen + 1;
    return c;
}

/* A row of S turned into weights in place: the band's scores get the scale and the slope and
 * go through the sigmoid or the softmax; the columns outside the band become 0. */
static inline float max_of(const float *x, int n);
static void band_to_weights(float *p, int keys, BandColumns c, float scale, float slope,
                            int mode) {
    for (int j = c.oldest; j <= c.newest; j++) p[j] = p[j] * scale + slope * (float)(c.newest - j);
    if (mode == ATTN_SIGMOID) {
        for (int j = c.oldest; j <= c.newest; j++) p[j] = sigmoid(p[j]);
    } else {
        float max_s = max_of(p + c.oldest, c.seen);
        float sum = 0.0f;
        for (int j = c.oldest; j <= c.newest; j++) {
            p[j] = exp_approx(p[j] - max_s);
            sum += p[j];
        }
        for (int j = c.oldest; j <= c.newest; j++) p[j] /= sum;
    }
    for (int j = 0; j < c.oldest; j++) p[j] = 0.0f;
    for (int j = c.newest + 1; j < keys; j++) p[j] = 0.0f;
}

/* Each thread's scratch: the blocks P and dS (block_floats each), one head's keys or values
 * transposed (D, T), then gemm_serial's. Returns the floats per thread. */
static size_t attention_scratch(int band, int T, int D, size_t *block_floats) {
    int kmax = ATTN_QB + band - 1;
    *block_floats = (size_t)ATTN_QB * kmax;
    return 2 * *block_floats + (size_t)D * T + gemm_scratch_floats(kmax > ATTN_QB ? kmax : ATTN_QB);
}

/* xt (D, T) = head h of sequence b of x (B*T, C), transposed: the products with K^T and V^T
 * then read whole rows of xt instead of gathering one float per key. */
static void head_transposed(float *xt, const float *x, int b, int h, int T, int C, int D) {
    for (int n = 0; n < T; n++)
        for (int i = 0; i < D; i++) xt[(long)i * T + n] = x[((long)b * T + n) * C + h * D + i];
}

/* The forward in blocks, for training (ctx = 0) and for evaluation in blocks, where each of
 * the B sequences has ctx positions of context before its T queries: their keys and values
 * come first in k and v (ctx+T rows a sequence; q and out have T). A query's arithmetic
 * depends only on its key index and the keys it sees, as long as blocks start at multiples
 * of ATTN_QB: a text fed in such blocks with the previous w-1 keys as context gives bit for
 * bit what one pass over the whole text gives. att, if not NULL, receives the band. */
static void attention_forward_ctx(float *out, float *att, const float *q, const float *k,
                                  const float *v, const float *slopes, int B, int T, int ctx,
                                  int C, int H, int window, int mode) {
    if (USE_REFERENCE) {
        attention_forward_naive(out, att, q, k, v, slopes, B, T, ctx, C, H, window, mode);
        return;
    }
    int D = C / H;
    int Tk = ctx + T; /* keys per sequence */
    int band = band_width(window, Tk);
    float scale = 1.0f / sqrtf((float)D);
    size_t block_floats;
    size_t per_thread = attention_scratch(band, Tk, D, &block_floats);
    float *all = scratch_floats(SCRATCH_ATTENTION, per_thread * num_threads());
    #pragma omp parallel
    {
        float *P = all + per_thread * thread_id(); /* (QB, keys) S = Q K^T, then the weights */
        float *kt = P + 2 * block_floats;          /* (D, Tk) this head's keys: K^T */
        float *scratch = kt + (size_t)D * Tk;
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                head_transposed(kt, k, b, h, Tk, C, D);
                for (int m0 = 0; m0 < T; m0 += ATTN_QB) {
                    AttnBlock blk = attention_block(b, h, m0, T, ctx, C, D, band);
                    int rows = blk.m1 - m0;
                    int keys = blk.keys;
                    product_ab(P, keys, q + blk.q_at, C, kt + blk.first_key, Tk, rows, keys, D,
                               0, scratch); /* S = Q K^T */
                    for (int m = m0; m < blk.m1; m++) {
                        float *p = P + (long)(m - m0) * keys;
                        BandColumns c = band_columns(ctx + m, blk.first_key, band);
                        band_to_weights(p, keys, c, scale, slopes[h], mode);
                        if (!att) continue;
                        float *a = att + (((long)b * H + h) * T + m) * band; /* a[d]: key m-d */
                        for (int d = 0; d < c.seen; d++) a[d] = p[c.newest - d];
                        for (int d = c.seen; d < band; d++) a[d] = 0.0f;
                    }
                    product_ab(out + blk.q_at, C, P, keys, v + blk.key_at, C, rows, D, keys, 0,
                               scratch); /* O = P V */
                }
            }
    }
}

/* dP's rows turned in place into dS: sigmoid ds = dp * p (1 - p), softmax
 * ds = p (dp - sum_j p dp), both times the 1/sqrt(D) of s = q.k/sqrt(D) + slope*d, so the
 * products that follow need no scale. dS is 0 outside the band, where P is. */
static void weights_backward(float *dS, const float *P, int rows, int keys, float scale,
                             int mode) {
    for (int r = 0; r < rows; r++) {
        const float *p = P + (long)r * keys;
        float *ds = dS + (long)r * keys;
        if (mode == ATTN_SIGMOID) {
            for (int j = 0; j < keys; j++) ds[j] = ds[j] * p[j] * (1.0f - p[j]) * scale;
        } else {
            float p_dp = dot3(p, ds, NULL, keys); /* sum_j p dP */
            for (int j = 0; j < keys; j++) ds[j] = p[j] * (ds[j] - p_dp) * scale;
        }
    }
}

static void attention_backward(float *dq, float *dk, float *dv, const float *dout,
                               const float *att, const float *q, const float *k, const float *v,
                               int B, int T, int C, int H, int window, int mode) {
    if (USE_REFERENCE) {
        attention_backward_naive(dq, dk, dv, dout, att, q, k, v, B, T, C, H, window, mode);
        return;
    }
    int D = C / H;
    int band = band_width(window, T);
    float scale = 1.0f / sqrtf((float)D);
    size_t block_floats;
    size_t per_thread = attention_scratch(band, T, D, &block_floats);
    float *all = scratch_floats(SCRATCH_ATTENTION, per_thread * num_threads());
    #pragma omp parallel
    {
        float *P = all + per_thread * thread_id(); /* (QB, keys) the weights, from att */
        float *dS = P + block_floats;              /* (QB, keys) dP = dO V^T, then dS */
        float *vt = P + 2 * block_floats;          /* (D, T) this head's values: V^T */
        float *scratch = vt + (size_t)D * T;
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                head_transposed(vt, v, b, h, T, C, D);
                for (int m0 = 0; m0 < T; m0 += ATTN_QB) {
                    AttnBlock blk = attention_block(b, h, m0, T, 0, C, D, band);
                    int rows = blk.m1 - m0;
                    int keys = blk.keys;
                    for (int m = m0; m < blk.m1; m++) {
                        float *p = P + (long)(m - m0) * keys;
                        const float *a = att + (((long)b * H + h) * T + m) * band;
                        BandColumns c = band_columns(m, blk.first_key, band);
                        for (int j = 0; j < keys; j++) p[j] = 0.0f;
                        for (int d = 0; d < c.seen; d++) p[c.newest - d] = a[d];
                    }
                    const float *dO = dout + blk.q_at;
                    product_ab(dS, keys, dO, C, vt + blk.first_key, T, rows, keys, D, 0,
                               scratch); /* dP = dO V^T */
                    weights_backward(dS, P, rows, keys, scale, mode);
                    product_ab(dq + blk.q_at, C, dS, keys, k + blk.key_at, C, rows, D, keys, 1,
                               scratch); /* dQ += dS K */
                    product_atb(dk + blk.key_at, C, dS, keys, q + blk.q_at, C, keys, D, rows, 1,
                                scratch); /* dK += dS^T Q */
                    product_atb(dv + blk.key_at, C, P, keys, dO, C, keys, D, rows, 1,
                                scratch); /* dV += P^T dO */
                }
            }
    }
}

/* ---- 4.6 SwiGLU -----------------------------------------------------------------------
 * y = silu(x) * u, with x = gate and u = up, the two projections of RMSNorm's output;
 * silu(x) = x * sigmoid(x) and sigmoid'(x) = sigmoid(x)(1 - sigmoid(x)), so the backward is
 *   dup += dy * silu(x)      dgate += dy * u * sigmoid(x) * (1 + x*(1 - sigmoid(x)))
 * with add = 0 overwriting dgate and dup instead. */
static void swiglu_forward_naive(float *out, const float *gate, const float *up, long N) {
    for (long i = 0; i < N; i++) out[i] = gate[i] * sigmoid_naive(gate[i]) * up[i];
}

static void swiglu_backward_naive(float *dgate, float *dup, const float *dout, const float *gate,
                                  const float *up, long N, int add) {
    for (long i = 0; i < N; i++) {
        float x = gate[i];
        float sg = sigmoid_naive(x);
        dup[i] = (add ? dup[i] : 0.0f) + dout[i] * x * sg;
        dgate[i] = (add ? dgate[i] : 0.0f) + dout[i] * up[i] * sg * (1.0f + x * (1.0f - sg));
    }
}

/* the same, with the vectorised sigmoid, by all threads */
static void swiglu_forward(float *out, const float *gate, const float *up, long N) {
    if (USE_REFERENCE) {
        swiglu_forward_naive(out, gate, up, N);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < N; i++) {
        float sg = sigmoid(gate[i]);
        out[i] = gate[i] * sg * up[i];
    }
}

static void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                            const float *up, long N, int add) {
    if (USE_REFERENCE) {
        swiglu_backward_naive(dgate, dup, dout, gate, up, N, add);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < N; i++) {
        float x = gate[i];
        float sg = sigmoid(x);
        dup[i] = (add ? dup[i] : 0.0f) + dout[i] * x * sg;
        dgate[i] = (add ? dgate[i] : 0.0f) + dout[i] * up[i] * sg * (1.0f + x * (1.0f - sg));
    }
}

/* ---- 4.7 cross-entropy ----------------------------------------------------------------
 * loss_t = logsumexp(logits_t) - logits_t[target]; the mean over N positions is the loss.
 * d loss / d logits_t = (softmax(logits_t) - onehot(target)) * dloss, with dloss = 1/N.
 * The backward adds into dlogits (add = 1) or overwrites it (add = 0), which may be done in
 * place (dlogits == logits): each row's max and sum are taken before it is written. */
static void crossentropy_forward_naive(float *losses, const float *logits, const int *targets,
                                       int N, int V) {
    for (int t = 0; t < N; t++) {
        const float *z = logits + (long)t * V;
        float max_z = -FLT_MAX;
        for (int i = 0; i < V; i++) max_z = z[i] > max_z ? z[i] : max_z;
        float sum = 0.0f;
        for (int i = 0; i < V; i++) sum += expf(z[i] - max_z);
        losses[t] = logf(sum) + max_z - z[targets[t]];
    }
}

static void crossentropy_backward_naive(float *dlogits, const float *logits, const int *targets,
                                        float dloss, int N, int V, int add) {
    for (int t = 0; t < N; t++) {
        const float *z = logits + (long)t * V;
        float *dz = dlogits + (long)t * V;
        float max_z = -FLT_MAX;
        for (int i = 0; i < V; i++) max_z = z[i] > max_z ? z[i] : max_z;
        float sum = 0.0f;
        for (int i = 0; i < V; i++) sum += expf(z[i] - max_z);
        for (int i = 0; i < V; i++) {
            float p = expf(z[i] - max_z) / sum;
            dz[i] = (add ? dz[i] : 0.0f) + p * dloss;
        }
        dz[targets[t]] -= dloss;
    }
}

/* The same sums: max and sum of exp over a row in lanes (section 12.1), by all threads. */
static inline float sum_exp(const float *x, float shift, int n); /* sum_i exp(x[i] - shift) */
static void crossentropy_forward(float *losses, const float *logits, const int *targets, int N,
                                 int V) {
    if (USE_REFERENCE) {
        crossentropy_forward_naive(losses, logits, targets, N, V);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < N; t++) {
        const float *z = logits + (long)t * V;
        float max_z = max_of(z, V);
        losses[t] = logf(sum_exp(z, max_z, V)) + max_z - z[targets[t]];
    }
}

static void crossentropy_backward(float *dlogits, const float *logits, const int *targets,
                                  float dloss, int N, int V, int add) {
    if (USE_REFERENCE) {
        crossentropy_backward_naive(dlogits, logits, targets, dloss, N, V, add);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < N; t++) {
        const float *z = logits + (long)t * V;
        float *dz = dlogits + (long)t * V;
        float max_z = max_of(z, V);
        float inv_sum = 1.0f / sum_exp(z, max_z, V);
        if (add)
            for (int i = 0; i < V; i++) dz[i] += exp_approx(z[i] - max_z) * inv_sum * dloss;
        else
            for (int i = 0; i < V; i++) dz[i] = exp_approx(z[i] - max_z) * inv_sum * dloss;
        dz[targets[t]] -= dloss;
    }
}

/* ------------------------------------------------------------------------------------ */
/* 5. the model                                                                          */
/* ------------------------------------------------------------------------------------ */

/* What one layer's forward keeps for its backward, for B sequences of T positions (N = B*T). */
typedef struct {
    float *x;        /* (N, C) the residual stream entering the layer */
    float *h;        /* (N, C) RMSNorm(x): the input of q, k and v */
    float *rstd;     /* (N)    its 1/rms */
    float *q;        /* (N, C) queries, after RoPE */
    float *k;        /* (N, C) keys, after RoPE */
    float *v;        /* (N, C) values */
    float *att;      /* (B, H, T, band) attention weights over the band */
    float *o;        /* (N, C) attention output, heads side by side */
    float *x_mid;    /* (N, C) the stream after the attention block */
    float *h_mlp;    /* (N, C) RMSNorm(x_mid): the input of gate and up */
    float *rstd_mlp; /* (N) */
    float *gate;     /* (N, F) h_mlp Wgate^T */
    float *up;       /* (N, F) h_mlp Wup^T */
    float *act;      /* (N, F) silu(gate) * up */
    float *x_next;   /* (N, C) the stream leaving the layer: the next layer's x */
} LayerActs;

/* The activations of a forward pass and the gradients of a backward, for one shape. */
typedef struct {
    int B, T, band;     /* the shape they were allocated for; band = min(w, T) */
    int window;         /* the attention window of the last forward */
    float *stream;      /* (L+1, N, C) the residual stream entering each layer, then the last */
    LayerActs *layer;   /* (L) what each layer keeps; its x and x_next point into stream */
    float *h_final;     /* (N, C) RMSNorm of the last stream */
    float *rstd_final;  /* (N) */
    int logit_rows;     /* positions whose logits are held at once: N, or a chunk of them */
    float *logits;      /* (logit_rows, V) all positions' logits, or the last chunk's */
    float *losses;      /* (N) */
    float *rope_cos;    /* (T, D/2) cos of RoPE's angles at positions 0..T-1 */
    float *rope_sin;    /* (T, D/2) */
    int *inputs;        /* (N) */
    int *targets;       /* (N) */
    /* the backward's, for one layer at a time (allocated by the first backward) */
    float *dx;          /* (N, C) gradient of the residual stream */
    float *dh;          /* (N, C) of a RMSNorm output, or of the attention output o */
    float *dq;          /* (N, C) */
    float *dk;          /* (N, C) */
    float *dv;          /* (N, C) */
    float *dgate;       /* (N, F) */
    float *dup;         /* (N, F) */
    float *dact;        /* (N, F) */
    float *dlogits;     /* (N, V) if all logits are held at once, else NULL: then in place */
} Activations;

typedef struct {
    ModelConfig cfg;
    size_t num_params;
    float *params;         /* (num_params) every tensor, in checkpoint order */
    float *grads;          /* (num_params) their gradients */
    float *adam_m;         /* (num_params) AdamW's moments, allocated by its first step */
    float *adam_v;         /* (num_params) */
    ParamTensors param;    /* the tensors, pointing into params */
    ParamTensors grad;     /* the same tensors' gradients, pointing into grads */
    float *slopes;         /* (H) ALiBi slopes */
    Activations a;
    int has_targets;       /* the last forward had targets: backward is possible */
    float loss;            /* mean loss of the last forward with targets */
} Model;

static void model_create(Model *m, const ModelConfig *cfg) {
    memset(m, 0, sizeof(*m));
    const char *problem = config_problem(cfg);
    if (problem) die("invalid model configuration: %s", problem);
    m->cfg = *cfg;
    m->num_params = param_count(cfg);
    m->params = xcalloc(m->num_params, sizeof(float), "parameters");
    /* plain calloc: its large blocks are fresh pages, mapped only when first written, so
     * --eval and --generate, which never touch the gradients, do not pay memory for them */
    m->grads = calloc(m->num_params, sizeof(float));
    if (!m->grads) die("gradients: out of memory (%.1f MB)", m->num_params * 4.0 / 1e6);
    m->param = param_tensors(cfg, m->params);
    m->grad = param_tensors(cfg, m->grads);
    m->slopes = xcalloc(cfg->H, sizeof(float), "slopes");
    alibi_slopes(cfg, m->slopes);
}

static void activations_free(Activations *a, int L) {
    for (int l = 0; a->layer && l < L; l++) free(a->layer[l].h); /* the layer's one block */
    free(a->layer);
    float *bufs[] = {a->stream, a->h_final, a->rstd_final, a->logits, a->losses, a->rope_cos,
                     a->rope_sin, a->dx, a->dlogits};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) free(bufs[i]);
    free(a->inputs);
    free(a->targets);
    memset(a, 0, sizeof(*a));
}

static void model_free(Model *m) {
    activations_free(&m->a, m->cfg.L);
    free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    free(m->slopes);
    memset(m, 0, sizeof(*m));
}

/* The logits of N positions are N*V floats, and their gradient as many: 1.6 GB each for
 * GPT-2's V = 50257 at N = 8192. Above logits_budget floats the forward computes the logits
 * and the loss a chunk of positions at a time, and the backward recomputes each chunk's
 * logits for its gradient. The chunk depends only on N and V, so the sums keep their order.
 * Tests lower the budget to check the chunked path against the plain one. */
static long logits_budget = 1L << 24; /* 64 MB of logits */
static int logit_rows(long N, int V) {
    if ((double)N * V <= (double)logits_budget) return (int)N; /* double: N may be absurd */
    long rows = logits_budget / V;
    return rows > 0 ? (int)rows : 1;
}

/* Bytes of activation memory for (B, T, window), the gradients' included: checked before
 * allocating. */
static double activation_bytes(const ModelConfig *c, int B, int T, int window) {
    double BT = (double)B * T, L = c->L, C = c->C, F = c->F, H = c->H;
    double rows = logit_rows((long)B * T, c->V);
    double layer = BT * (7 * C + 2 + 3 * F) + B * H * (double)T * band_width(window, T);
    double floats = (L + 1) * BT * C + L * layer + BT * (C + 1 + 1)
                  + (rows < BT ? 1 : 2) * rows * c->V + T * (double)C + BT * (5 * C + 3 * F)
                  + 2 * BT;
    return floats * 4;
}

/* n floats from a block, rounded up to whole cache lines */
static float *carve(float **block, size_t n) {
    float *p = *block;
    *block += (n + 15) / 16 * 16;
    return p;
}

static void activations_ensure(Model *m, int B, int T, int window) {
    Activations *a = &m->a;
    const ModelConfig *c = &m->cfg;
    int band = band_width(window, T);
    if (a->B == B && a->T == T && a->band == band) return;
    activations_free(a, c->L);
    double gb = activation_bytes(c, B, T, window) / 1e9;
    if (gb > 200) die("batch %d x sequence %d needs %.0f GB of activations", B, T, gb);
    size_t N = (size_t)B * T, C = c->C, F = c->F, D = C / c->H;
    size_t NC = N * C, NF = N * F, NA = (size_t)B * c->H * T * band;
    a->B = B;
    a->T = T;
    a->band = band;
    a->stream = xcalloc((c->L + 1) * NC, 4, "activations");
    a->layer = xcalloc(c->L, sizeof(LayerActs), "activations");
    for (int l = 0; l < c->L; l++) {
        LayerActs *s = &a->layer[l];
        float *block = xcalloc(8 * NC + 2 * N + 3 * NF + NA + 14 * 16, 4, "activations");
        s->x = a->stream + l * NC;
        s->h = carve(&block, NC);
        s->rstd = carve(&block, N);
        s->q = carve(&block, NC);
        s->k = carve(&block, NC);
        s->v = carve(&block, NC);
        s->att = carve(&block, NA);
        s->o = carve(&block, NC);
        s->x_mid = carve(&block, NC);
        s->h_mlp = carve(&block, NC);
        s->rstd_mlp = carve(&block, N);
        s->gate = carve(&block, NF);
        s->up = carve(&block, NF);
        s->act = carve(&block, NF);
        s->x_next = a->stream + (l + 1) * NC;
    }
    a->h_final = xcalloc(NC, 4, "activations");
    a->rstd_final = xcalloc(N, 4, "activations");
    a->logit_rows = logit_rows((long)N, c->V);
    a->logits = xcalloc((size_t)a->logit_rows * c->V, 4, "activations");
    a->losses = xcalloc(N, 4, "activations");
    a->rope_cos = xcalloc((size_t)T * (D / 2 + 1), 4, "activations");
    a->rope_sin = xcalloc((size_t)T * (D / 2 + 1), 4, "activations");
    if (c->rope) rope_tables(a->rope_cos, a->rope_sin, T, D, c->rope_theta, 0);
    a->inputs = xcalloc(N, sizeof(int), "tokens");
    a->targets = xcalloc(N, sizeof(int), "tokens");
}

/* The backward's buffers, on its first call: evaluation and generation never pay for them. */
static void activations_ensure_grads(Model *m) {
    Activations *a = &m->a;
    if (a->dx) return;
    size_t N = (size_t)a->B * a->T, NC = N * m->cfg.C, NF = N * m->cfg.F;
    float *block = xcalloc(5 * NC + 3 * NF + 8 * 16, 4, "gradients");
    a->dx = carve(&block, NC);
    a->dh = carve(&block, NC);
    a->dq = carve(&block, NC);
    a->dk = carve(&block, NC);
    a->dv = carve(&block, NC);
    a->dgate = carve(&block, NF);
    a->dup = carve(&block, NF);
    a->dact = carve(&block, NF);
    if (a->logit_rows == (int)N) a->dlogits = xcalloc(N * m->cfg.V, 4, "gradients");
}

/* One layer's forward on B sequences of T positions: s->x in, s->x_next out, and between
 * them what the backward needs, in s. With ctx > 0 (one text in blocks, section 10) the ctx
 * keys and values of the positions before the block sit in the rows just before s->k and
 * s->v, and the queries attend to them too. */
static void layer_forward(const Model *m, int l, const LayerActs *s, int B, int T, int ctx,
                          const float *rope_cos, const float *rope_sin, int window) {
    const ModelConfig *c = &m->cfg;
    LayerWeights w = layer_weights(&m->param, c, l);
    int N = B * T, C = c->C, F = c->F, H = c->H;
    /* attention block: x_mid = x + Attn(RMSNorm(x)) Wo^T */
    rmsnorm_forward(s->h, s->rstd, s->x, w.attn_norm, N, C);
    matmul_forward(s->q, s->h, w.wq, N, C, C);
    matmul_forward(s->k, s->h, w.wk, N, C, C);
    matmul_forward(s->v, s->h, w.wv, N, C, C);
    if (c->rope) {
        rope_forward(s->q, rope_cos, rope_sin, B, T, C, H);
        rope_forward(s->k, rope_cos, rope_sin, B, T, C, H);
    }
    attention_forward_ctx(s->o, s->att, s->q, s->k - (long)ctx * C, s->v - (long)ctx * C,
                          m->slopes, B, T, ctx, C, H, window, c->attn);
    matmul_forward(s->x_mid, s->o, w.wo, N, C, C);
    add_floats(s->x_mid, s->x, (long)N * C);
    /* MLP block: x_next = x_mid + (silu(h Wgate^T) * h Wup^T) Wdown^T, h = RMSNorm(x_mid) */
    rmsnorm_forward(s->h_mlp, s->rstd_mlp, s->x_mid, w.mlp_norm, N, C);
    matmul_forward(s->gate, s->h_mlp, w.w_gate, N, C, F);
    matmul_forward(s->up, s->h_mlp, w.w_up, N, C, F);
    swiglu_forward(s->act, s->gate, s->up, (long)N * F);
    matmul_forward(s->x_next, s->act, w.w_down, N, F, C);
    add_floats(s->x_next, s->x_mid, (long)N * C);
}

/* Every input, and target (may be NULL), of N positions from position pos0 is a token */
static void check_tokens(const int *inputs, const int *targets, int N, int V, long pos0) {
    for (int i = 0; i < N; i++) {
        int bad_input = inputs[i] < 0 || inputs[i] >= V;
        const char *what = bad_input ? "token" : "target";
        if (bad_input || (targets && (targets[i] < 0 || targets[i] >= V)))
            die("%s %d at position %ld is outside the vocabulary (V=%d)", what,
                bad_input ? inputs[i] : targets[i], pos0 + i, V);
    }
}

/* The forward pass of doc/SPEC.md section 3 on B sequences of T tokens (positions 0..T-1
 * each), with attention window `window` (the training window, or another for evaluation).
 * The logits land in m->a.logits: all of them, or the last chunk's (see logit_rows). With
 * targets (may be NULL) it returns the mean loss. */
static float model_forward(Model *m, const int *inputs, const int *targets, int B, int T,
                           int window) {
    const ModelConfig *c = &m->cfg;
    activations_ensure(m, B, T, window);
    Activations *a = &m->a;
    int N = B * T, C = c->C, V = c->V;
    long NC = (long)N * C;
    check_tokens(inputs, targets, N, V, 0);
    a->window = window;
    memcpy(a->inputs, inputs, N * sizeof(int));
    if (targets) memcpy(a->targets, targets, N * sizeof(int));

    embedding_forward(a->stream, inputs, m->param.wte, N, C);
    for (int l = 0; l < c->L; l++)
        layer_forward(m, l, &a->layer[l], B, T, 0, a->rope_cos, a->rope_sin, window);
    rmsnorm_forward(a->h_final, a->rstd_final, a->stream + c->L * NC, m->param.final_norm, N, C);
    for (int r0 = 0; r0 < N; r0 += a->logit_rows) { /* one chunk of positions, or all of them */
        int rows = N - r0 < a->logit_rows ? N - r0 : a->logit_rows;
        matmul_forward(a->logits, a->h_final + (long)r0 * C, m->param.lm_head, rows, C, V);
        if (targets) crossentropy_forward(a->losses + r0, a->logits, targets + r0, rows, V);
    }
    m->has_targets = targets != NULL;
    if (!targets) return 0.0f;
    double sum = 0.0; /* in a fixed order: the same loss for any thread count */
    for (int i = 0; i < N; i++) sum += a->losses[i];
    m->loss = (float)(sum / N);
    return m->loss;
}

static void model_zero_grad(Model *m) { zero_floats(m->grads, (long)m->num_params); }

/* Gradients of the last forward's mean loss, ADDED into m->grads: model_forward's steps in
 * reverse. The last argument of matmul_backward and swiglu_backward is 0 for the first
 * gradient written into a buffer (it overwrites) and 1 for those that add to it. */
static void model_backward(Model *m) {
    if (!m->has_targets) die("model_backward needs a forward pass with targets");
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->a;
    int B = a->B, T = a->T, N = B * T, C = c->C, F = c->F, V = c->V, H = c->H;
    long NC = (long)N * C, NF = (long)N * F;
    activations_ensure_grads(m);
    /* the logits again chunk by chunk when they were computed in chunks (model_forward), with
     * their gradient in place of them */
    int chunked = a->logit_rows < N;
    float *dlogits = chunked ? a->logits : a->dlogits;
    for (int r0 = 0; r0 < N; r0 += a->logit_rows) {
        int rows = N - r0 < a->logit_rows ? N - r0 : a->logit_rows;
        const float *h = a->h_final + (long)r0 * C;
        if (chunked) matmul_forward(a->logits, h, m->param.lm_head, rows, C, V);
        crossentropy_backward(dlogits, a->logits, a->targets + r0, 1.0f / N, rows, V, 0);
        matmul_backward(a->dh + (long)r0 * C, m->grad.lm_head, dlogits, h, m->param.lm_head,
                        rows, C, V, 0);
    }
    zero_floats(a->dx, NC);
    rmsnorm_backward(a->dx, m->grad.final_norm, a->dh, a->stream + c->L * NC,
                     m->param.final_norm, a->rstd_final, N, C);
    for (int l = c->L - 1; l >= 0; l--) {
        LayerWeights w = layer_weights(&m->param, c, l);
        LayerWeights dw = layer_weights(&m->grad, c, l);
        const LayerActs *s = &a->layer[l];
        /* MLP block; the residual passes dx through unchanged and the branch adds to it */
        matmul_backward(a->dact, dw.w_down, a->dx, s->act, w.w_down, N, F, C, 0);
        swiglu_backward(a->dgate, a->dup, a->dact, s->gate, s->up, NF, 0);
        matmul_backward(a->dh, dw.w_gate, a->dgate, s->h_mlp, w.w_gate, N, C, F, 0);
        matmul_backward(a->dh, dw.w_up, a->dup, s->h_mlp, w.w_up, N, C, F, 1);
        rmsnorm_backward(a->dx, dw.mlp_norm, a->dh, s->x_mid, w.mlp_norm, s->rstd_mlp, N, C);
        /* attention block; dh is now the gradient of o */
        matmul_backward(a->dh, dw.wo, a->dx, s->o, w.wo, N, C, C, 0);
        zero_floats(a->dq, NC);
        zero_floats(a->dk, NC);
        zero_floats(a->dv, NC);
        attention_backward(a->dq, a->dk, a->dv, a->dh, s->att, s->q, s->k, s->v, B, T, C, H,
                           a->window, c->attn);
        if (c->rope) {
            rope_backward(a->dq, a->rope_cos, a->rope_sin, B, T, C, H);
            rope_backward(a->dk, a->rope_cos, a->rope_sin, B, T, C, H);
        }
        /* dh: the gradient of RMSNorm(x), the sum of the three projections' */
        matmul_backward(a->dh, dw.wq, a->dq, s->h, w.wq, N, C, C, 0);
        matmul_backward(a->dh, dw.wk, a->dk, s->h, w.wk, N, C, C, 1);
        matmul_backward(a->dh, dw.wv, a->dv, s->h, w.wv, N, C, C, 1);
        rmsnorm_backward(a->dx, dw.attn_norm, a->dh, s->x, w.attn_norm, s->rstd, N, C);
    }
    embedding_backward(m->grad.wte, a->dx, a->inputs, N, C);
}

/* ------------------------------------------------------------------------------------ */
/* 6. one token at a time: a ring of the last w keys and values per layer                */
/* ------------------------------------------------------------------------------------ */

/* A SWAT layer at position p only needs the keys and values of positions p-w+1..p, so each
 * layer keeps a ring buffer of w keys (RoPE applied) and w values: row p % w holds position p.
 * A token costs O(L*(C*C + C*F + w*C)) work and the memory never grows; RoPE makes q.k depend
 * only on m-n, so positions may grow without bound. infer_step_naive below is the model for one
 * token as plain loops: the best first read of this file. (Prompts and texts: blocks, 10.1.) */

/* how many threads decode the next token: chosen while decoding, see decode_threads_before */
typedef struct {
    int threads_all;        /* the thread count "all threads" means; 1: always one thread */
    int token;              /* tokens since the period began: 0 .. period-1 */
    int period;             /* tokens from one probe to the next */
    double window_start;    /* when the DECODE_PROBE tokens timed now began, in seconds */
    double one_thread_time; /* seconds that DECODE_PROBE tokens took on one thread (the probe) */
} DecodeThreads;

/* the state of decoding: n sequences, their caches and the buffers of one token */
typedef struct {
    const Model *m;
    int window;            /* w: the ring holds the last w positions */
    int keep_first;        /* StreamingLLM: positions 0..keep_first-1 stay (kept_scores_naive) */
    int n;                 /* sequences decoded together (--samples), all at one position */
    long pos;              /* tokens consumed so far (by each sequence) */
    float *k_cache;        /* (n, L, w + keep_first, C) keys, RoPE applied: the ring, then kept */
    float *v_cache;        /* (n, L, w + keep_first, C) values, the same rows */
    float *x;              /* (n, C) the residual streams of the current tokens */
    float *h;              /* (C) a RMSNorm output */
    float *q;              /* (n, C) queries, RoPE at position p */
    float *k_new;          /* (n, C) the new keys, before they enter the ring */
    float *v_new;          /* (n, C) the new values */
    float *scores;         /* (w + keep_first) one head's scores, then its weights */
    float *o;              /* (n, C) attention outputs, heads side by side */
    float *branch;         /* (C) what a block adds to x */
    float *gate;           /* (F) h Wgate^T */
    float *up;             /* (F) h Wup^T */
    float *act;            /* (n, F) the MLP's silu(gate) * up */
    float *logits;         /* (n, V) the predictions for the next tokens */
    float *rope_cos;       /* (D/2) RoPE at position p: cos */
    float *rope_sin;       /* (D/2) and sin */
    float *q_first;        /* (n, C) keep-first: the queries, RoPE at the cache index */
    float *first_cos;      /* (D/2) keep-first: RoPE at the cache index */
    float *first_sin;      /* (D/2) */
    float *packed;         /* the fast decoder's: the weights in panels (pack_model) */
    float *k_transposed;   /* (n, L, C, w) the fast decoder's copy of the ring's keys, lane-major */
    int use_threads;       /* threads for the next token: 0 all, else that many (starts at 1) */
    DecodeThreads decode;  /* how use_threads is chosen */
} InferState;

/* The fast decoder (section 12.4): the weights packed into panels, one token of n sequences, the
 * cache's rows with the transposed copy of its keys, and the choice of how many threads decode. */
static float *pack_model(const Model *m);
static void infer_step_all(InferState *s, const int *tokens);
static void cache_store(InferState *s, int i, int l, int row, int lane0, int lanes,
                        const float *k, const float *v);
static void decode_threads_init(InferState *s);
static void decode_threads_before(InferState *s);

/* n sequences at position 0, all with the same window and kept first positions */
static void infer_init(InferState *s, const Model *m, int window, int keep_first, int n) {
    const ModelConfig *c = &m->cfg;
    *s = (InferState){.m = m, .window = window, .keep_first = keep_first, .n = n, .use_threads = 1};
    size_t rows = (size_t)window + keep_first, C = c->C, F = c->F, half = C / c->H / 2 + 1;
    size_t cache = (size_t)n * c->L * rows * C, nC = (size_t)n * C, nF = (size_t)n * F;
    struct { float **buf; size_t floats; } all[] = { /* the shapes are the comments above */
        {&s->k_cache, cache}, {&s->v_cache, cache}, {&s->k_transposed, cache / rows * window},
        {&s->x, nC}, {&s->h, C}, {&s->q, nC}, {&s->k_new, nC}, {&s->v_new, nC},
        {&s->scores, rows}, {&s->o, nC}, {&s->branch, C}, {&s->gate, F}, {&s->up, F},
        {&s->act, nF}, {&s->logits, (size_t)n * c->V}, {&s->rope_cos, half},
        {&s->rope_sin, half}, {&s->q_first, nC}, {&s->first_cos, half}, {&s->first_sin, half}};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        *all[i].buf = xcalloc(all[i].floats, sizeof(float), "inference");
    s->packed = pack_model(m);
    decode_threads_init(s);
}

static void infer_free(InferState *s) {
    float *all[] = {s->k_cache, s->v_cache, s->k_transposed, s->x, s->h, s->q, s->k_new,
                    s->v_new, s->scores, s->o, s->branch, s->gate, s->up, s->act, s->logits,
                    s->rope_cos, s->rope_sin, s->q_first, s->first_cos, s->first_sin,
                    s->packed};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) free(all[i]);
    memset(s, 0, sizeof(*s));
}

/* Where the token at position p = s->pos stands: the same for every sequence, layer and head */
typedef struct {
    long p;            /* its position in the text */
    int slot;          /* its ring row: p % w */
    int seen;          /* window keys its query sees, positions p-seen+1 .. p: min(p+1, w) */
    int kept;          /* keep-first: first positions kept after leaving the window */
    long cache_index;  /* keep-first: its query's index in the cache, min(p, keep_first + w - 1) */
} CachePosition;

static CachePosition cache_position(const InferState *s) {
    long p = s->pos, w = s->window, keep_first = s->keep_first;
    long evicted = p - w + 1 > 0 ? p - w + 1 : 0; /* positions 0..evicted-1 left the window */
    return (CachePosition){.p = p, .slot = (int)(p % w), .seen = (int)(p + 1 < w ? p + 1 : w),
                           .kept = (int)(evicted < keep_first ? evicted : keep_first),
                           .cache_index = p < keep_first + w - 1 ? p : keep_first + w - 1};
}

static int kept_scores_naive(InferState *s, int l, int hd, float *a);

/* One token through the whole model as the plain loops of the math: the best first read of this
 * file (infer_step_all, section 12.4, computes the same sums regrouped; test_swat.c compares).
 * The token at position p = s->pos, of one sequence (s->n = 1):
 *   1. x = wte[token]                                  the residual stream (C); then per layer:
 *   2.   h = RMSNorm(x) * attn_norm
 *   3.   q = h Wq^T, k = h Wk^T, v = h Wv^T              RoPE turns q and k by the angle of p
 *   4.   k and v go into ring row p % w, over position p-w's, which no query sees again
 *   5.   per head, for ring rows r = 0 .. seen-1 (row r holds position p - d):
 *        s_r = q.k_r / sqrt(D) + slope_h * d;  a_r = sigmoid(s_r) (SWAT) or the softmax over r
 *   6.   x += o Wo^T                 with o = sum_r a_r v_r, the heads side by side
 *   7.   h = RMSNorm(x) * mlp_norm;   x += (silu(h Wgate^T) * h Wup^T) Wdown^T
 *   8. logits = RMSNorm(x) * final_norm lm_head^T      (V) scores for the next token */
static void infer_step_naive(InferState *s, int token) {
    const Model *m = s->m;
    const ModelConfig *c = &m->cfg;
    int C = c->C, F = c->F, H = c->H, D = C / H, V = c->V, w = s->window;
    size_t rows = (size_t)w + s->keep_first; /* cache rows of a layer */
    CachePosition at = cache_position(s);
    float scale = 1.0f / sqrtf((float)D);
    float *x = s->x, *h = s->h, *q = s->q, *k = s->k_new, *v = s->v_new, *o = s->o; /* (C) */
    float *a = s->scores; /* (seen + kept) */
    if (token < 0 || token >= V) die("token %d is outside the vocabulary (V=%d)", token, V);

    memcpy(x, m->param.wte + (long)token * C, C * sizeof(float));                   /* 1 */
    if (c->rope) rope_tables(s->rope_cos, s->rope_sin, 1, D, c->rope_theta, at.p);
    for (int l = 0; l < c->L; l++) {
        LayerWeights lw = layer_weights(&m->param, c, l);
        float *k_cache = s->k_cache + (size_t)l * rows * C; /* (rows, C) keys: [row][hd*D + i] */
        float *v_cache = s->v_cache + (size_t)l * rows * C; /* (rows, C) values */
        rmsnorm_row_naive(h, x, lw.attn_norm, C);                                  /* 2 */
        matmul_forward_naive(q, h, lw.wq, 1, C, C);                                /* 3 */
        matmul_forward_naive(k, h, lw.wk, 1, C, C);
        matmul_forward_naive(v, h, lw.wv, 1, C, C);
        for (int hd = 0; c->rope && hd < H; hd++) {
            rope_head(q + hd * D, s->rope_cos, s->rope_sin, D, 1.0f);
            rope_head(k + hd * D, s->rope_cos, s->rope_sin, D, 1.0f);
        }
        memcpy(k_cache + (size_t)at.slot * C, k, C * sizeof(float));               /* 4 */
        memcpy(v_cache + (size_t)at.slot * C, v, C * sizeof(float));
        for (int hd = 0; hd < H; hd++) {                                           /* 5 */
            for (int r = 0; r < at.seen; r++) {
                int d = (at.slot - r + w) % w; /* row r holds position p - d */
                const float *key = k_cache + (size_t)r * C + hd * D;
                float dot = 0.0f;
                for (int i = 0; i < D; i++) dot += q[hd * D + i] * key[i];
                a[r] = dot * scale + m->slopes[hd] * (float)d;
            }
            int keys = at.seen + kept_scores_naive(s, l, hd, a); /* 0 without --keep-first */
            float max_s = -FLT_MAX; /* softmax: exp(s - max) keeps exp in range, changes nothing */
            float sum = 0.0f;
            for (int r = 0; r < keys; r++) max_s = a[r] > max_s ? a[r] : max_s;
            for (int r = 0; r < keys; r++) {
                a[r] = c->attn == ATTN_SIGMOID ? sigmoid_naive(a[r]) : expf(a[r] - max_s);
                sum += a[r];
            }
            for (int r = 0; c->attn == ATTN_SOFTMAX && r < keys; r++) a[r] /= sum;
            for (int i = 0; i < D; i++) {
                float acc = 0.0f;
                for (int r = 0; r < keys; r++) acc += a[r] * v_cache[(size_t)r * C + hd * D + i];
                o[hd * D + i] = acc;
            }
        }
        matmul_forward_naive(s->branch, o, lw.wo, 1, C, C);                        /* 6 */
        for (int i = 0; i < C; i++) x[i] += s->branch[i];
        rmsnorm_row_naive(h, x, lw.mlp_norm, C);                                   /* 7 */
        matmul_forward_naive(s->gate, h, lw.w_gate, 1, C, F);
        matmul_forward_naive(s->up, h, lw.w_up, 1, C, F);
        for (int i = 0; i < F; i++) s->act[i] = s->gate[i] * sigmoid_naive(s->gate[i]) * s->up[i];
        matmul_forward_naive(s->branch, s->act, lw.w_down, 1, F, C);
        for (int i = 0; i < C; i++) x[i] += s->branch[i];
    }
    rmsnorm_row_naive(h, x, m->param.final_norm, C);                               /* 8 */
    matmul_forward_naive(s->logits, h, m->param.lm_head, 1, C, V);
    s->pos++;
}

/* StreamingLLM (Xiao et al. 2023), --keep-first: the first keep_first positions stay in rows
 * w, w+1, ... of the cache after they leave the window (then seen = w: rows 0 .. w+kept-1 are
 * the keys of step 5). Positions count within the cache, the first keep_first then the last w:
 * the query sits at c = min(p, keep_first + w - 1), kept position j at distance c - j, for
 * ALiBi and RoPE (key j was turned by j; the query, turned by p in step 3, is turned on by
 * c - p). Until p = keep_first + w - 1 that is plain attention. For head hd of layer l: keeps
 * position p while p < keep_first, writes the kept keys' scores to a[w ..], returns their count. */
static int kept_scores_naive(InferState *s, int l, int hd, float *a) {
    const ModelConfig *c = &s->m->cfg;
    int C = c->C, D = C / c->H, w = s->window;
    if (s->keep_first == 0) return 0;
    CachePosition at = cache_position(s);
    size_t rows = (size_t)w + s->keep_first;
    float *k_cache = s->k_cache + (size_t)l * rows * C + hd * D; /* (rows, C) from head hd */
    float *v_cache = s->v_cache + (size_t)l * rows * C + hd * D;
    float *q = s->q_first + hd * D; /* (D) the query at cache index c */
    if (at.p < s->keep_first) { /* a first position: its cache index is its position */
        memcpy(k_cache + (w + at.p) * C, k_cache + (size_t)at.slot * C, D * sizeof(float));
        memcpy(v_cache + (w + at.p) * C, v_cache + (size_t)at.slot * C, D * sizeof(float));
    }
    memcpy(q, s->q + hd * D, D * sizeof(float));
    if (c->rope && at.kept > 0) { /* turned by c - p: from p to c */
        rope_tables(s->first_cos, s->first_sin, 1, D, c->rope_theta, at.cache_index - at.p);
        rope_head(q, s->first_cos, s->first_sin, D, 1.0f);
    }
    for (int j = 0; j < at.kept; j++) {
        float dot = 0.0f;
        for (int i = 0; i < D; i++) dot += q[i] * k_cache[(size_t)(w + j) * C + i];
        a[w + j] = dot / sqrtf((float)D) + s->m->slopes[hd] * (float)(at.cache_index - j);
    }
    return at.kept;
}

/* The naive build's decoder of n sequences: infer_step_naive on each in turn, each a state of
 * one sequence that has its own part of the cache and of the logits. */
static void infer_step_naive_n(InferState *s, const int *tokens) {
    const ModelConfig *c = &s->m->cfg;
    size_t cache = (size_t)c->L * (s->window + s->keep_first) * c->C; /* of one sequence */
    for (int i = 0; i < s->n; i++) {
        InferState one = *s;
        one.n = 1;
        one.k_cache += i * cache;
        one.v_cache += i * cache;
        one.logits += (size_t)i * c->V;
        infer_step_naive(&one, tokens[i]);
    }
    s->pos++;
}

/* One token for each of the s->n sequences (tokens[i] for sequence i), all at position
 * p = s->pos; s->logits row i then predicts sequence i's next token. The fast decoder runs
 * them together (infer_step_all, section 12.4), the naive build one by one. */
static void infer_step_n(InferState *s, const int *tokens) {
    if (USE_REFERENCE) {
        infer_step_naive_n(s, tokens);
        return;
    }
    decode_threads_before(s);
    infer_step_all(s, tokens);
}

/* one token of a one-sequence state; s->logits then predicts the next one */
static void infer_step(InferState *s, int token) {
    if (s->n != 1) die("infer_step: the state holds %d sequences", s->n);
    infer_step_n(s, &token);
}

/* Sample from softmax(logits / temperature), restricted to the top_k largest (0 = all);
 * temperature 0 takes the argmax. */
static int sample_token(const float *logits, int V, double temperature, int top_k,
                        uint64_t *rng) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0) return best;
    float cutoff = -FLT_MAX;
    if (top_k > 0 && top_k < V) { /* the k-th largest logit, by repeated selection */
        float prev = FLT_MAX;
        for (int j = 0; j < top_k; j++) {
            float next = -FLT_MAX;
            for (int i = 0; i < V; i++)
                if (logits[i] < prev && logits[i] > next) next = logits[i];
            prev = next;
        }
        cutoff = prev;
    }
    double sum = 0.0;
    for (int i = 0; i < V; i++)
        if (logits[i] >= cutoff) sum += exp((logits[i] - logits[best]) / temperature);
    double r = rng_uniform(rng) * sum;
    for (int i = 0; i < V; i++) {
        if (logits[i] < cutoff) continue;
        r -= exp((logits[i] - logits[best]) / temperature);
        if (r <= 0) return i;
    }
    return best;
}

/* ------------------------------------------------------------------------------------ */
/* 7. the optimizer                                                                      */
/* ------------------------------------------------------------------------------------ */

typedef struct {
    double lr;           /* peak learning rate */
    double min_lr_ratio; /* the cosine decays to lr*min_lr_ratio */
    int warmup;          /* steps of linear warmup */
    int steps;           /* the planned length of the run (the schedule's horizon) */
    double beta1, beta2, eps, weight_decay;
    double clip;         /* the global gradient norm is clipped to this (0: no clipping) */
} OptimConfig;

/* Linear warmup: step s < warmup uses lr*(s+1)/warmup. Then a cosine from lr down to
 * lr*min_lr_ratio over the rest of the planned run (with warmup 0 and one step: exactly lr). */
static double lr_at_step(const OptimConfig *o, int step) {
    if (step < o->warmup) return o->lr * (step + 1) / o->warmup;
    int decay_steps = o->steps - o->warmup > 1 ? o->steps - o->warmup : 1;
    double progress = (double)(step - o->warmup) / decay_steps;
    if (progress > 1.0) progress = 1.0;
    double min_lr = o->lr * o->min_lr_ratio; /* written so that progress 0 gives lr exactly */
    return o->lr - 0.5 * (o->lr - min_lr) * (1.0 - cos(M_PI * progress));
}

/* The global L2 norm of all gradients, summed in a fixed order: 64 slices, each in double in
 * SUM_LANES lanes (as dot3 sums), then the slices in order: any thread count gives the same. */
static double grad_norm(const float *grads, size_t n) {
    enum { SLICES = 64 };
    double part[SLICES];
    #pragma omp parallel for schedule(static)
    for (int s = 0; s < SLICES; s++) {
        size_t lo = n * s / SLICES, hi = n * (s + 1) / SLICES, i = lo;
        double lane[SUM_LANES] = {0}, acc = 0.0;
        for (; i + SUM_LANES <= hi; i += SUM_LANES)
            for (int l = 0; l < SUM_LANES; l++) lane[l] += (double)grads[i + l] * grads[i + l];
        for (int l = 0; l < SUM_LANES; l++) acc += lane[l];
        for (; i < hi; i++) acc += (double)grads[i] * grads[i];
        part[s] = acc;
    }
    double total = 0.0;
    for (int s = 0; s < SLICES; s++) total += part[s];
    return sqrt(total);
}

/* One AdamW step with PyTorch's semantics: clip the gradients to a global norm of `clip`
 * (coefficient clip/(norm+1e-6), as torch.nn.utils.clip_grad_norm_), then per parameter
 *   p -= lr*wd*p                                  (decoupled decay, matrices only)
 *   m = b1 m + (1-b1) g ;  v = b2 v + (1-b2) g^2
 *   p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)   with t = step+1.
 * `norm` is grad_norm() of the unclipped gradients. */
static void adamw_step(Model *m, const OptimConfig *o, int step, double lr, double norm) {
    if (!m->adam_m) {
        m->adam_m = xcalloc(m->num_params, sizeof(float), "AdamW moments");
        m->adam_v = xcalloc(m->num_params, sizeof(float), "AdamW moments");
    }
    float gscale = 1.0f;
    if (o->clip > 0 && o->clip / (norm + 1e-6) < 1.0) gscale = (float)(o->clip / (norm + 1e-6));
    double bc1 = 1.0 - pow(o->beta1, step + 1), bc2 = 1.0 - pow(o->beta2, step + 1);
    float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    float step_size = (float)(lr / bc1), inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    size_t sizes[NUM_PARAM_TENSORS], off = 0;
    param_sizes(&m->cfg, sizes);
    for (int tensor = 0; tensor < NUM_PARAM_TENSORS; tensor++) {
        float decay = param_is_decayed(tensor) ? (float)(1.0 - lr * o->weight_decay) : 1.0f;
        float *p = m->params + off;
        const float *grad = m->grads + off;
        float *m1 = m->adam_m + off; /* the first moment m */
        float *m2 = m->adam_v + off; /* the second moment v */
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < sizes[tensor]; i++) {
            float g = grad[i] * gscale;
            m1[i] = b1 * m1[i] + (1.0f - b1) * g;
            m2[i] = b2 * m2[i] + (1.0f - b2) * g * g;
            p[i] = p[i] * decay - step_size * m1[i] / (sqrtf(m2[i]) * inv_sqrt_bc2 + eps);
        }
        off += sizes[tensor];
    }
}

/* ------------------------------------------------------------------------------------ */
/* 8. data: token shards, the batch order, the tokenizer                                 */
/* ------------------------------------------------------------------------------------ */

/* A token shard (doc/SPEC.md section 9, llm.c's format): 256 int32 [20240520, 1, N, 0...],
 * then N uint16 tokens. The whole shard is read into memory and checked. */
#define SHARD_MAGIC 20240520
typedef struct {
    uint16_t *tokens; /* (n) */
    long n;
} Shard;

/* 1 if the first bytes of a header are printable text (someone passed a .txt file) */
static int looks_like_text(const int32_t *header) {
    const unsigned char *b = (const unsigned char *)header;
    for (int i = 0; i < 64; i++)
        if (b[i] < 9 || (b[i] > 13 && b[i] < 32) || b[i] == 127) return 0;
    return 1;
}

static void shard_load(Shard *s, const char *path, int V) {
    FILE *f = fopen(path, "rb");
    if (!f) die("%s: cannot open token shard: %s", path, strerror(errno));
    int32_t header[256];
    size_t got = fread(header, sizeof(int32_t), 256, f);
    if (got == 0) die("%s: token shard is empty", path);
    if (got < 256)
        die("%s: token shard is truncated (header is %zu of 1024 bytes)", path, got * 4);
    if (header[0] != SHARD_MAGIC && looks_like_text(header))
        die("%s: not a token shard (magic %d, expected %d): it looks like text; make shards of it "
            "with data/prepare_text (bytes) or data/prepare_bpe.py (subwords)", path, header[0],
            SHARD_MAGIC);
    if (header[0] != SHARD_MAGIC)
        die("%s: not a token shard (magic %d, expected %d)", path, header[0], SHARD_MAGIC);
    if (header[1] != 1) die("%s: unsupported token shard version %d (expected 1)", path, header[1]);
    if (header[2] < 0) die("%s: negative token count %d", path, header[2]);
    if (fseek(f, 0, SEEK_END) != 0) die("%s: cannot seek: %s", path, strerror(errno));
    long size = ftell(f);
    long expect = 1024 + 2L * header[2];
    if (size != expect)
        die("%s: file is %ld bytes but its header promises %d tokens (%ld bytes)", path, size,
            header[2], expect);
    if (header[2] < 2) die("%s: token shard has %d tokens; at least 2 are needed", path, header[2]);
    s->n = header[2];
    s->tokens = xcalloc(s->n, sizeof(uint16_t), path);
    if (fseek(f, 1024, SEEK_SET) != 0 || fread(s->tokens, 2, s->n, f) != (size_t)s->n)
        die("%s: read error", path);
    fclose(f);
    unsigned largest = 0; /* what vocabulary the data needs, for the message */
    for (long i = 0; i < s->n; i++)
        if (s->tokens[i] > largest) largest = s->tokens[i];
    for (long i = 0; largest >= (unsigned)V && i < s->n; i++)
        if (s->tokens[i] >= V)
            die("%s: token %u at index %ld is not below the vocabulary size %d (the largest token "
                "is %u: the data needs --vocab %u or more)", path, s->tokens[i], i, V, largest,
                largest + 1);
}

/* A shard, or several read in order as one token stream: PATTERN may be a glob pattern
 * (llm.c's data comes as name_000001.bin, name_000002.bin, ...), expanded in sorted order. */
static void shards_load(Shard *s, const char *pattern, int V, const char *flag) {
    if (!strpbrk(pattern, "*?[")) {
        shard_load(s, pattern, V);
        return;
    }
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0))
        die("%s %s: no file matches the pattern", flag, pattern);
    if (rc != 0) die("%s %s: cannot expand the pattern", flag, pattern);
    Shard *parts = xcalloc(g.gl_pathc, sizeof(Shard), "shards");
    long total = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        shard_load(&parts[i], g.gl_pathv[i], V);
        if (parts[i].n > LONG_MAX / 2 - total) die("%s %s: too many tokens", flag, pattern);
        total += parts[i].n;
    }
    s->n = total;
    s->tokens = xcalloc(total, sizeof(uint16_t), pattern);
    for (size_t i = 0, at = 0; i < g.gl_pathc; at += parts[i].n, i++) {
        memcpy(s->tokens + at, parts[i].tokens, parts[i].n * sizeof(uint16_t));
        free(parts[i].tokens);
    }
    printf("%s %s: %zu shards, %ld tokens, read in order as one stream\n", flag, pattern,
           g.gl_pathc, total);
    free(parts);
    globfree(&g);
}

/* One training sequence or evaluation chunk of T inputs and T targets that starts at token
 * `start` of the shard (doc/SPEC.md sections 7 and 10). Without a start token: inputs
 * t[start .. start+T), targets one to the right. With one: inputs [bos, t[start] ..
 * t[start+T-2]] and targets t[start .. start+T), so every target is still a token of data.
 * sequence_slice gives positions i0 .. i0+n-1 of it (texts that go through in blocks). */
static void sequence_slice(int *inputs, int *targets, const uint16_t *t, long start, long i0,
                           int n, int bos) {
    for (int j = 0; j < n; j++) {
        long i = start + i0 + j;
        if (bos < 0) {
            inputs[j] = t[i];
            targets[j] = t[i + 1];
        } else {
            inputs[j] = i0 + j == 0 ? bos : t[i - 1];
            targets[j] = t[i];
        }
    }
}
static void make_sequence(int *inputs, int *targets, const uint16_t *t, long start, int T,
                          int bos) {
    sequence_slice(inputs, targets, t, start, 0, T, bos);
}

/* The batch order. Unshuffled (doc/SPEC.md section 10): a cursor starts at 0, sequence b of
 * a batch starts at token cursor + b*T, the cursor advances by B*T and wraps to 0 when fewer
 * than B*T+1 tokens remain. Shuffled: the shard is cut into floor((N-1)/T) sequences at
 * multiples of T, and each epoch visits them in a fresh random order (a function of the seed
 * and the epoch), B at a time, skipping a partial batch at the end. The whole state is
 * (cursor, epoch), so a resume can restore it. */
typedef struct {
    const Shard *shard;
    int B, T;
    int shuffle;     /* 1: shuffled order */
    int bos;         /* the start token, or -1 */
    uint64_t seed;
    long cursor;     /* unshuffled: a token position; shuffled: an index into the order */
    long epoch;
    long num_seqs;   /* shuffled: sequences per epoch */
    long *order;     /* shuffled: (num_seqs) the epoch's permutation */
} Loader;

static void loader_shuffle(Loader *ld) {
    for (long i = 0; i < ld->num_seqs; i++) ld->order[i] = i;
    uint64_t rng = ld->seed * 0x2545F4914F6CDD1Dull + (uint64_t)ld->epoch + 1;
    for (long i = ld->num_seqs - 1; i > 0; i--) { /* Fisher-Yates */
        long j = (long)(rng_next(&rng) % (uint64_t)(i + 1));
        long swap = ld->order[i];
        ld->order[i] = ld->order[j];
        ld->order[j] = swap;
    }
}

static void loader_init(Loader *ld, const Shard *s, int B, int T, int shuffle, uint64_t seed,
                        int bos, const char *name) {
    memset(ld, 0, sizeof(*ld));
    ld->shard = s;
    ld->B = B;
    ld->T = T;
    ld->shuffle = shuffle;
    ld->seed = seed;
    ld->bos = bos;
    if (s->n < (long)B * T + 1)
        die("%s: %ld tokens are too few for a batch of %d x %d (+1)", name, s->n, B, T);
    if (shuffle) {
        ld->num_seqs = (s->n - 1) / T;
        ld->order = xcalloc(ld->num_seqs, sizeof(long), "shuffle order");
        loader_shuffle(ld);
    }
}

/* Restore a position saved in a checkpoint. Shuffled, the end of an epoch (num_seqs) is
 * valid: loader_next starts the next epoch from it. Unshuffled, a batch reads B*T+1 tokens
 * from the cursor, so the cursor must be below n - B*T. */
static void loader_seek(Loader *ld, long cursor, long epoch) {
    long limit = ld->shuffle ? ld->num_seqs + 1 : ld->shard->n - (long)ld->B * ld->T;
    if (cursor < 0 || cursor >= limit || epoch < 0)
        die("checkpoint's data position %ld is outside the training shard", cursor);
    ld->cursor = cursor;
    if (ld->shuffle && epoch != ld->epoch) {
        ld->epoch = epoch;
        loader_shuffle(ld);
    }
}

static void loader_next(Loader *ld, int *inputs, int *targets) {
    int B = ld->B, T = ld->T;
    const uint16_t *t = ld->shard->tokens;
    if (ld->shuffle && ld->cursor + B > ld->num_seqs) {
        ld->epoch++;
        ld->cursor = 0;
        loader_shuffle(ld);
    }
    for (int b = 0; b < B; b++) {
        long start = ld->shuffle ? ld->order[ld->cursor + b] * T : ld->cursor + (long)b * T;
        make_sequence(inputs + (long)b * T, targets + (long)b * T, t, start, T, ld->bos);
    }
    if (ld->shuffle) {
        ld->cursor += B;
        return;
    }
    ld->cursor += (long)B * T;
    if (ld->shard->n - ld->cursor < (long)B * T + 1) ld->cursor = 0;
}

static void loader_free(Loader *ld) {
    free(ld->order);
    ld->order = NULL;
}

/* A tokenizer file (llm.c's format, doc/SPEC.md section 9): 256 uint32 [20240328, version 1
 * or 2, V, end-of-text id (version 2)], then for each token one uint8 length n >= 1 and its
 * n bytes. Decoding is concatenating the tokens' bytes (encoding: tokenizer_encode). */
#define TOKENIZER_MAGIC 20240328
typedef struct {
    int V;                /* tokens in the file (0: none; tokens print as bytes or ids) */
    int eot;              /* the end-of-text id (version 2), or -1 */
    unsigned char *bytes; /* every token's text, back to back */
    long *offset;         /* (V + 1) token i is bytes[offset[i] .. offset[i+1]) */
} Tokenizer;

static void tokenizer_load(Tokenizer *tk, const char *path) {
    memset(tk, 0, sizeof(*tk));
    FILE *f = fopen(path, "rb");
    if (!f) die("%s: cannot open tokenizer file: %s", path, strerror(errno));
    uint32_t h[256];
    size_t got = fread(h, 4, 256, f);
    if (got < 256)
        die("%s: tokenizer file is truncated (header is %zu of 1024 bytes)", path, got * 4);
    if (h[0] != TOKENIZER_MAGIC)
        die("%s: not a tokenizer file (magic %u, expected %d)", path, h[0], TOKENIZER_MAGIC);
    if (h[1] != 1 && h[1] != 2)
        die("%s: unsupported tokenizer version %u (expected 1 or 2)", path, h[1]);
    if (h[2] < 1 || h[2] > 65536)
        die("%s: tokenizer vocabulary size %u is not in 1..65536", path, h[2]);
    tk->V = (int)h[2];
    tk->eot = h[1] == 2 ? (int)h[3] : -1;
    if (h[1] == 2 && h[3] >= h[2])
        die("%s: end-of-text id %u is not below the vocabulary size %u", path, h[3], h[2]);
    tk->offset = xcalloc((size_t)tk->V + 1, sizeof(long), "tokenizer");
    tk->bytes = xcalloc((size_t)tk->V * 255, 1, "tokenizer"); /* at most 255 bytes a token */
    long at = 0;
    for (int i = 0; i < tk->V; i++) {
        int n = fgetc(f);
        if (n == 0) die("%s: token %d has length 0 (every token has at least one byte)", path, i);
        if (n == EOF || fread(tk->bytes + at, 1, (size_t)n, f) != (size_t)n)
            die("%s: tokenizer file is truncated at token %d of %d", path, i, tk->V);
        tk->offset[i] = at;
        at += n;
    }
    tk->offset[tk->V] = at;
    if (fgetc(f) != EOF) die("%s: tokenizer file has bytes after its %d tokens", path, tk->V);
    fclose(f);
}

static void tokenizer_free(Tokenizer *tk) {
    free(tk->bytes);
    free(tk->offset);
    memset(tk, 0, sizeof(*tk));
}

/* The highest id (or the lowest) of a token with bytes s[0..n): never the end-of-text token,
 * nor prepare_bpe's <unk> (0, when the end-of-text is 1). -1: there is none. */
static int token_id(const Tokenizer *tk, const char *s, long n, int lowest) {
    int found = -1;
    for (int i = tk->eot == 1; i < tk->V; i++)
        if (i != tk->eot && tk->offset[i + 1] - tk->offset[i] == n && (found < 0 || !lowest) &&
            !memcmp(tk->bytes + tk->offset[i], s, (size_t)n))
            found = i;
    return found;
}

/* The bytes of the UTF-8 character at s; 1 for a byte that begins none (the end of the text,
 * 0, is no continuation byte, so nothing past it is read) */
static int utf8_length(const unsigned char *s) {
    int n = s[0] < 0xC2 ? 1 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : s[0] < 0xF5 ? 4 : 1;
    for (int k = 1; k < n; k++)
        if ((s[k] & 0xC0) != 0x80) return 1;
    return n;
}

/* The characters of the next piece of text from byte p, as prepare_bpe.py cuts it: up to the
 * end of a line, 4096 characters, or a character that SentencePiece never joins with another
 * (a byte that is no UTF-8, U+2581, a space if no token is one), which ends its piece. The
 * piece's character k is text[at[k] .. at[k+1]); returns their number. */
static long bpe_piece(const unsigned char *u, long len, long p, long *at, int space_alone) {
    long m = 0;
    int alone = 0;
    while (p < len && m < 4096 && !alone && (m == 0 || u[p - 1] != '\n')) {
        int c = utf8_length(u + p);
        alone = (c == 1 && u[p] > 127) || (c == 3 && !memcmp(u + p, "\xe2\x96\x81", 3)) ||
                (u[p] == ' ' && space_alone);
        at[m++] = p;
        p += c;
    }
    at[m] = p;
    return m;
}

/* Text to tokens as data/prepare_bpe.py encodes it: SentencePiece's BPE, which scores learned
 * piece i as 258 - i, so the ids are the merge order. In each piece (bpe_piece) the symbols
 * start as its characters; the adjacent pair whose bytes are the token of lowest id joins (the
 * leftmost of equals), until none does. A symbol is then its token of highest id (a learned
 * "A", not the byte piece <0x41>), or else its bytes' tokens (SentencePiece's byte fallback).
 * GPT-2's file gets BPE without GPT-2's split into words: close, not exact (--prompt-ids).
 * Returns the number of tokens, or -1 if some byte has no token. */
static int tokenizer_encode(const Tokenizer *tk, const char *text, int *tokens) {
    const unsigned char *u = (const unsigned char *)text;
    long len = (long)strlen(text);
    long *at = xcalloc((size_t)len + 2, sizeof(long), "prompt");   /* symbol k: at[k]..at[k+1] */
    long *join = xcalloc((size_t)len + 2, sizeof(long), "prompt"); /* symbols k, k+1 as a token */
    int n = 0;
    int failed = 0;
    int space_alone = token_id(tk, " ", 1, 0) < 0;
    for (long p = 0, m; p < len; p = at[m]) {
        m = bpe_piece(u, len, p, at, space_alone);
        for (long k = 0; k + 1 < m; k++) join[k] = token_id(tk, text + at[k], at[k + 2] - at[k], 0);
        for (;; m--) { /* join the best pair, k and k+1 */
            long k = -1;
            for (long j = 0; j + 1 < m; j++)
                if (join[j] >= 0 && (k < 0 || join[j] < join[k])) k = j;
            if (k < 0) break;
            memmove(at + k + 1, at + k + 2, (size_t)(m - k - 1) * sizeof(long));
            memmove(join + k, join + k + 1, (size_t)(m - k - 2) * sizeof(long));
            if (k > 0) join[k - 1] = token_id(tk, text + at[k - 1], at[k + 1] - at[k - 1], 0);
            if (k + 2 < m) join[k] = token_id(tk, text + at[k], at[k + 2] - at[k], 0);
        }
        for (long k = 0; k < m; k++) {
            int id = token_id(tk, text + at[k], at[k + 1] - at[k], 0);
            if (id >= 0) tokens[n++] = id;
            for (long b = at[k]; id < 0 && b < at[k + 1]; b++) {
                tokens[n] = token_id(tk, text + b, 1, 1);
                if (tokens[n++] < 0) failed = 1;
            }
        }
    }
    free(at);
    free(join);
    return failed ? -1 : n;
}

/* Print a token: the tokenizer's bytes for it, if there is a tokenizer; else a byte for the
 * byte vocabulary (V = 256, or 257 with the start token 256, which prints as <256>); else
 * its id. Control bytes other than newline and tab print as '?'. */
static int printable(int ch) { return ch == '\n' || ch == '\t' || ch >= 32 ? ch : '?'; }
static void print_token(FILE *f, const Tokenizer *tk, int token, int V) {
    if (tk && tk->V > 0)
        for (long i = tk->offset[token]; i < tk->offset[token + 1]; i++)
            fputc(printable(tk->bytes[i]), f);
    else if ((V == 256 || V == 257) && token < 256)
        fputc(printable(token), f);
    else if (V == 257)
        fprintf(f, "<%d>", token);
    else
        fprintf(f, "%d ", token);
}

/* ------------------------------------------------------------------------------------ */
/* 9. checkpoints                                                                        */
/* ------------------------------------------------------------------------------------ */

/* doc/SPEC.md section 8: 256 int32 header, the parameters as float32 in checkpoint order and,
 * when header[15] = 1, the AdamW moments m and v (same layout) and the trainer state:
 * TRAINER_STATE_INTS int64 then TRAINER_STATE_DOUBLES float64. Version 2 adds the start token
 * (header[16]) and a CRC-32 of the whole file (header[17], computed with that field 0), so
 * that corruption is an error instead of a model that silently means something else. A
 * checkpoint is written to PATH.tmp, synced and renamed over PATH: a complete checkpoint
 * exists at every instant. */
#define CKPT_MAGIC 0x54415753 /* the bytes "SWAT" */
#define CKPT_VERSION 2        /* written for new models; version 1 files are still read */
#define CKPT_CRC_FIELD 17
#define TRAINER_STATE_MAGIC 0x4E55525454415753ll /* the bytes "SWATTRUN" */
#define TRAINER_STATE_INTS 16
#define TRAINER_STATE_DOUBLES 16

/* CRC-32 as in zlib, PNG and Python's zlib.crc32 (reflected polynomial 0xEDB88320, initial
 * and final XOR 0xFFFFFFFF), a byte at a time through a 256-entry table. Chainable:
 * crc32_update(crc32_update(0, a, na), b, nb) is the CRC of a followed by b. */
static uint32_t crc32_update(uint32_t crc, const void *data, size_t n) {
    static uint32_t table[256];
    static int ready = 0;
    if (!ready) { /* benign if two threads race: both write the same values */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int j = 0; j < 8; j++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* Everything needed to continue a run exactly where it stopped. */
typedef struct {
    OptimConfig opt;
    int B, T;
    int shuffle;
    int step;            /* optimizer steps completed */
    uint64_t seed;
    uint64_t sample_rng; /* the generator of the training samples */
    long cursor, epoch;  /* the training loader's position */
} TrainState;

/* The model's fields in header order: header[2 + i] is the int at config_fields[i]. */
static const size_t config_fields[] = {
    offsetof(ModelConfig, V), offsetof(ModelConfig, L), offsetof(ModelConfig, H),
    offsetof(ModelConfig, C), offsetof(ModelConfig, F), offsetof(ModelConfig, window),
    offsetof(ModelConfig, attn), offsetof(ModelConfig, alibi_neg),
    offsetof(ModelConfig, alibi_pos), offsetof(ModelConfig, rope),
    offsetof(ModelConfig, rope_theta), offsetof(ModelConfig, seq_len)};
#define CONFIG_FIELDS (int)(sizeof(config_fields) / sizeof(config_fields[0]))

static void config_to_header(const ModelConfig *c, int32_t *h) {
    memset(h, 0, 256 * sizeof(int32_t));
    h[0] = CKPT_MAGIC;
    h[1] = c->version;
    for (int i = 0; i < CONFIG_FIELDS; i++)
        h[2 + i] = *(const int *)((const char *)c + config_fields[i]);
    if (c->version >= 2) h[16] = c->bos; /* version 1: 0, and no start token */
}

/* The inverse of config_to_header: the model a header describes (checked by config_problem). */
static ModelConfig header_to_config(const int32_t *h) {
    ModelConfig c;
    for (int i = 0; i < CONFIG_FIELDS; i++) *(int *)((char *)&c + config_fields[i]) = h[2 + i];
    c.version = h[1];
    c.bos = h[1] == 2 ? h[16] : -1;
    return c;
}

/* The size of a checkpoint of this model, with or without the trainer state. */
static double checkpoint_bytes(const ModelConfig *c, int has_state) {
    double P = (double)param_count(c);
    double state = 8 * P + 8.0 * (TRAINER_STATE_INTS + TRAINER_STATE_DOUBLES);
    return 1024.0 + 4 * P + (has_state ? state : 0);
}

/* fwrite that also runs the CRC over what it wrote */
static int write_crc(FILE *f, const void *data, size_t size, size_t count, uint32_t *crc) {
    *crc = crc32_update(*crc, data, size * count);
    return fwrite(data, size, count, f) == count;
}

/* The moments and the trainer state, after the parameters */
static int write_state(FILE *f, const Model *m, const TrainState *ts, uint32_t *crc) {
    const OptimConfig *o = &ts->opt;
    int64_t ints[TRAINER_STATE_INTS] = {TRAINER_STATE_MAGIC, o->steps, o->warmup, ts->B, ts->T,
                                        (int64_t)ts->seed, ts->shuffle, ts->cursor, ts->epoch,
                                        (int64_t)ts->sample_rng};
    double dbl[TRAINER_STATE_DOUBLES] = {o->lr, o->min_lr_ratio, o->beta1, o->beta2, o->eps,
                                         o->weight_decay, o->clip};
    return write_crc(f, m->adam_m, 4, m->num_params, crc) &&
           write_crc(f, m->adam_v, 4, m->num_params, crc) &&
           write_crc(f, ints, 8, TRAINER_STATE_INTS, crc) &&
           write_crc(f, dbl, 8, TRAINER_STATE_DOUBLES, crc);
}

static void checkpoint_save(const char *path, const Model *m, const TrainState *ts) {
    size_t len = strlen(path);
    char *tmp = xcalloc(len + 5, 1, "path");
    snprintf(tmp, len + 5, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) die("%s: cannot write checkpoint: %s", tmp, strerror(errno));
    int32_t h[256];
    uint32_t crc = 0;
    config_to_header(&m->cfg, h);
    h[14] = ts ? ts->step : 0;
    h[15] = ts && m->adam_m ? 1 : 0;
    int ok = write_crc(f, h, 4, 256, &crc) && write_crc(f, m->params, 4, m->num_params, &crc);
    if (ok && h[15]) ok = write_state(f, m, ts, &crc);
    if (ok && m->cfg.version >= 2) /* the CRC went over the header with its field still 0 */
        ok = fseek(f, 4L * CKPT_CRC_FIELD, SEEK_SET) == 0 && fwrite(&crc, 4, 1, f) == 1;
    int err = errno;
    if (ok && (fflush(f) != 0 || fsync(fileno(f)) != 0)) {
        ok = 0;
        err = errno;
    }
    if (fclose(f) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (!ok) {
        unlink(tmp);
        die("%s: writing the checkpoint failed (%s); any previous checkpoint is intact", path,
            strerror(err));
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        die("%s: cannot rename %s into place: %s", path, tmp, strerror(err));
    }
    free(tmp);
    char *dir = dir_of(path); /* the rename is durable once the directory is synced */
    int dir_fd = open(dir, O_RDONLY);
    if (dir_fd >= 0) {
        fsync(dir_fd);
        close(dir_fd);
    }
    free(dir);
}

/* The CRC of a version 2 file, read as it is on disk with the CRC field taken as 0. */
static uint32_t checkpoint_file_crc(FILE *f, const char *path) {
    static unsigned char buf[1 << 16];
    uint32_t crc = 0;
    long offset = 0;
    size_t got;
    if (fseek(f, 0, SEEK_SET) != 0) die("%s: cannot seek: %s", path, strerror(errno));
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        for (long i = 4L * CKPT_CRC_FIELD; i < 4L * CKPT_CRC_FIELD + 4; i++)
            if (i >= offset && i < offset + (long)got) buf[i - offset] = 0;
        crc = crc32_update(crc, buf, got);
        offset += (long)got;
    }
    if (ferror(f)) die("%s: read error", path);
    return crc;
}

/* A version 2 file whose CRC does not match: a short file is the likeliest reason, so say
 * so when the header implies more bytes, without trusting the header for anything else. */
static void die_checksum(FILE *f, const char *path, const int32_t *h) {
    double size = (double)ftell(f);
    double implied = 0;
    ModelConfig u = header_to_config(h);
    u.bos = -1; /* the size does not depend on it, and it may be the corrupt field */
    if (!config_problem(&u) && (h[15] == 0 || h[15] == 1)) implied = checkpoint_bytes(&u, h[15]);
    if (implied > size)
        die("%s: checksum mismatch: the file is corrupt or was modified (it is %.0f bytes, its "
            "header implies %.0f: truncated?)", path, size, implied);
    die("%s: checksum mismatch: the file is corrupt or was modified", path);
}

/* The header's checks beyond the CRC; returns the model it describes. */
static ModelConfig checkpoint_header(FILE *f, const char *path, const int32_t *h) {
    ModelConfig c = header_to_config(h);
    if (h[1] == 1 && (h[16] != 0 || h[17] != 0))
        die("%s: bad checkpoint header: version 1 has fields 16 and 17 at 0 (they are %d and %d)",
            path, h[16], h[17]);
    const char *problem = config_problem(&c);
    if (problem) die("%s: bad checkpoint header: %s", path, problem);
    if (h[14] < 0) die("%s: bad checkpoint header: negative step count %d", path, h[14]);
    if (h[15] != 0 && h[15] != 1)
        die("%s: bad checkpoint header: field 15 is %d (expected 0 or 1)", path, h[15]);
    for (int i = 18; i < 256; i++)
        if (h[i] != 0)
            die("%s: bad checkpoint header: reserved field %d is %d (expected 0)", path, i, h[i]);
    double expect = checkpoint_bytes(&c, h[15]);
    if (fseek(f, 0, SEEK_END) != 0) die("%s: cannot seek: %s", path, strerror(errno));
    double size = (double)ftell(f);
    if (size != expect)
        die("%s: checkpoint is %.0f bytes but its header implies %.0f", path, size, expect);
    return c;
}

/* The moments and the trainer state, after the parameters; checked, into m and ts. */
static void read_state(FILE *f, const char *path, Model *m, TrainState *ts, int step) {
    m->adam_m = xcalloc(m->num_params, 4, "AdamW moments");
    m->adam_v = xcalloc(m->num_params, 4, "AdamW moments");
    int64_t i64[TRAINER_STATE_INTS];
    double dbl[TRAINER_STATE_DOUBLES];
    if (fread(m->adam_m, 4, m->num_params, f) != m->num_params ||
        fread(m->adam_v, 4, m->num_params, f) != m->num_params ||
        fread(i64, 8, TRAINER_STATE_INTS, f) != TRAINER_STATE_INTS ||
        fread(dbl, 8, TRAINER_STATE_DOUBLES, f) != TRAINER_STATE_DOUBLES)
        die("%s: read error", path);
    if (i64[0] != TRAINER_STATE_MAGIC) die("%s: trainer state is corrupt (bad magic)", path);
    for (size_t i = 0; i < m->num_params; i++)
        if (!isfinite(m->adam_m[i]) || !(m->adam_v[i] >= 0) || !isfinite(m->adam_v[i]))
            die("%s: AdamW moment %zu is not finite", path, i);
    int sizes_ok = i64[1] >= 0 && i64[1] <= INT32_MAX && i64[2] >= 0 && i64[2] <= INT32_MAX &&
                   i64[3] >= 1 && i64[3] <= INT32_MAX && i64[4] >= 1 && i64[4] <= INT32_MAX;
    if (!sizes_ok || (i64[6] != 0 && i64[6] != 1) || i64[7] < 0 || i64[8] < 0)
        die("%s: trainer state is corrupt (a field is out of range)", path);
    for (int i = 0; i < 7; i++)
        if (!isfinite(dbl[i]) || dbl[i] < 0)
            die("%s: trainer state is corrupt (hyperparameter %d)", path, i);
    if (dbl[0] > 1e3 || dbl[1] > 1 || dbl[2] >= 1 || dbl[3] >= 1 || !(dbl[4] > 0) ||
        dbl[5] > 1e3 || dbl[6] > 1e30)
        die("%s: trainer state is corrupt (a hyperparameter is out of range)", path);
    memset(ts, 0, sizeof(*ts));
    ts->opt = (OptimConfig){.lr = dbl[0], .min_lr_ratio = dbl[1], .beta1 = dbl[2],
                            .beta2 = dbl[3], .eps = dbl[4], .weight_decay = dbl[5],
                            .clip = dbl[6], .steps = (int)i64[1], .warmup = (int)i64[2]};
    ts->B = (int)i64[3];
    ts->T = (int)i64[4];
    ts->seed = (uint64_t)i64[5];
    ts->shuffle = (int)i64[6];
    ts->cursor = (long)i64[7];
    ts->epoch = (long)i64[8];
    ts->sample_rng = (uint64_t)i64[9];
    ts->step = step;
}

/* Load a checkpoint into a fresh model. If ts is not NULL and the file carries trainer state,
 * fill it and the AdamW moments and return 1; else return 0. Nothing beyond the magic and the
 * version is trusted before a version 2 file's CRC matches. */
static int checkpoint_load(const char *path, Model *m, TrainState *ts) {
    FILE *f = fopen(path, "rb");
    if (!f) die("%s: cannot open checkpoint: %s", path, strerror(errno));
    int32_t h[256];
    size_t got = fread(h, 4, 256, f);
    if (got == 0) die("%s: checkpoint is empty", path);
    if (got < 256)
        die("%s: checkpoint is truncated (header is %zu of 1024 bytes)", path, got * 4);
    if (h[0] != CKPT_MAGIC)
        die("%s: not a SWAT checkpoint (bad magic 0x%08x)", path, (unsigned)h[0]);
    if (h[1] != 1 && h[1] != 2)
        die("%s: unsupported checkpoint version %d (this trainer reads 1 and 2)", path, h[1]);
    if (h[1] == 2 && checkpoint_file_crc(f, path) != (uint32_t)h[CKPT_CRC_FIELD])
        die_checksum(f, path, h);
    ModelConfig c = checkpoint_header(f, path, h);
    model_create(m, &c);
    fseek(f, 1024, SEEK_SET);
    if (fread(m->params, 4, m->num_params, f) != m->num_params) die("%s: read error", path);
    for (size_t i = 0; i < m->num_params; i++)
        if (!isfinite(m->params[i])) die("%s: parameter %zu is not finite", path, i);
    int has_state = h[15] && ts;
    if (has_state) read_state(f, path, m, ts, h[14]);
    fclose(f);
    return has_state;
}

/* ------------------------------------------------------------------------------------ */
/* 10. evaluation and generation: the model in blocks of positions                       */
/* ------------------------------------------------------------------------------------ */

/* Where the attention goes, per layer and head, summed over evaluation chunks: the weight on
 * position 0 (the start token, when the model has one) for the queries that see it. Softmax
 * parks spare weight there, the attention sink (Xiao et al. 2023); Gu et al. (2025) count a
 * head as a sink head when its mean weight on the first token exceeds 0.3. Sigmoid rows are
 * not normalised, so the raw weight, the row sum and the share (weight / row sum) tell
 * different stories: a dormant sigmoid head can output almost nothing instead. */
#define SINK_THRESHOLD 0.3
/* A head whose weights add up to less than this is switched off, not a sink: its share on
 * position 0 is then a ratio of two numbers near 0 and says nothing. */
#define SINK_MIN_ROW_SUM 0.05
typedef struct {
    int L, H;
    double *first;   /* (L, H) sum over queries of a(m, 0) */
    double *row_sum; /* (L, H) sum over queries of sum_n a(m, n) */
    double *share;   /* (L, H) sum over queries of a(m, 0) / sum_n a(m, n) */
    long queries;    /* queries summed (the same for every head) */
} SinkStats;

static void sink_stats_init(SinkStats *st, const ModelConfig *c) {
    st->L = c->L;
    st->H = c->H;
    st->queries = 0;
    st->first = xcalloc(3 * (size_t)c->L * c->H, sizeof(double), "sink stats");
    st->row_sum = st->first + c->L * c->H;
    st->share = st->row_sum + c->L * c->H;
}
static void sink_stats_free(SinkStats *st) { free(st->first); /* the block of all three */ }

/* Add layer l's attention band of a block, att (B, H, T, band) with a[d] the weight of key
 * pos0+m-d of query m: the queries at positions 1 .. reach-1 of each chunk, which see
 * position 0 (reach = min(E, window)). Summed by chunk, head, query. */
static void sink_stats_add_band(SinkStats *st, int l, const float *att, int B, int H, int T,
                                int band, long pos0, int reach) {
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int m = 0; m < T; m++) {
                long p = pos0 + m; /* the query's position: it sees position 0 at distance p */
                if (p < 1 || p >= reach) continue;
                const float *a = att + (((long)b * H + h) * T + m) * band;
                double sum = 0.0;
                for (long d = 0; d <= p; d++) sum += a[d];
                st->first[l * H + h] += a[p];
                st->row_sum[l * H + h] += sum;
                st->share[l * H + h] += sum > 0 ? a[p] / sum : 0.0;
            }
}

/* Heads whose mean share on position 0 exceeds SINK_THRESHOLD, among the heads that are on
 * (mean row sum at least SINK_MIN_ROW_SUM; a softmax row always sums to 1). */
static int sink_heads(const SinkStats *st) {
    int n = 0;
    for (int i = 0; i < st->L * st->H; i++)
        n += st->queries > 0 && st->share[i] / st->queries > SINK_THRESHOLD &&
             st->row_sum[i] / st->queries >= SINK_MIN_ROW_SUM;
    return n;
}

/* ---- 10.1 the model in blocks of positions ------------------------------------------
 * Evaluation, streams and prompts run layer_forward without keeping what a backward needs:
 * one set of buffers serves every layer, for a block of at most BLOCK_POSITIONS positions,
 * so they stay in the caches. Two uses:
 *   - chunks: B sequences of T positions each (positions 0..T-1), B*T <= BLOCK_POSITIONS;
 *   - a text (context = 1): one sequence a block at a time, every layer keeping the keys and
 *     values of the last w-1 positions before the block. Blocks are BLOCK_POSITIONS long, a
 *     multiple of ATTN_QB, so every query is computed exactly as in one pass over the whole
 *     text (attention_forward_ctx): bit for bit model_forward's results. */
#define BLOCK_POSITIONS 1024
typedef struct {
    const Model *m;
    int window;       /* attention window w */
    int rows;         /* positions per block */
    int context;      /* 1: one text in blocks, keeping max_context keys and values per layer */
    int max_context;  /* rows of context kept between blocks: at most w-1 */
    int ctx;          /* rows of context held now */
    long pos;         /* position of the next block's first token (context = 1) */
    LayerActs s;      /* one layer's buffers, (rows, C) and (rows, F); att for the sinks */
    float *kv;        /* per layer (context) or once: keys then values, (max_context + rows, C) */
    int logit_rows;   /* positions whose logits are held at once */
    float *logits;    /* (logit_rows, V) */
    float *losses;    /* (rows) */
    float *rope_cos;  /* (rows, D/2) */
    float *rope_sin;  /* (rows, D/2) */
} BlockState;

/* rows: positions per block; context: see above, for texts of at most max_len positions */
static void block_init(BlockState *bs, const Model *m, int w, int rows, int context,
                       long max_len, int with_att) {
    const ModelConfig *c = &m->cfg;
    memset(bs, 0, sizeof(*bs));
    bs->m = m;
    bs->window = w;
    bs->rows = rows;
    bs->context = context;
    bs->max_context = context ? (int)(w - 1 < max_len ? w - 1 : max_len) : 0;
    size_t R = rows, C = c->C, F = c->F, kv_rows = (size_t)bs->max_context + R;
    size_t att = with_att ? R * c->H * (size_t)band_width(w, (int)kv_rows) : 0;
    float *block = xcalloc(5 * R * C + 2 * R * F + att + 8 * 16, 4, "inference activations");
    bs->s.x = carve(&block, R * C);
    bs->s.x_next = bs->s.x;             /* the stream is updated in place */
    bs->s.h = carve(&block, R * C);
    bs->s.h_mlp = bs->s.h;              /* the attention's input is not needed any more */
    bs->s.q = carve(&block, R * C);
    bs->s.o = carve(&block, R * C);
    bs->s.x_mid = carve(&block, R * C);
    bs->s.gate = carve(&block, R * F);
    bs->s.act = bs->s.gate;             /* SwiGLU's output in place of its gate */
    bs->s.up = carve(&block, R * F);
    bs->s.att = with_att ? carve(&block, att) : NULL;
    bs->kv = xcalloc((context ? (size_t)c->L : 1) * 2 * kv_rows * C, 4, "inference activations");
    bs->logit_rows = logit_rows(rows, c->V);
    bs->logits = xcalloc((size_t)bs->logit_rows * c->V, 4, "inference activations");
    bs->losses = xcalloc(R, 4, "inference activations");
    bs->rope_cos = xcalloc(R * (C / c->H / 2 + 1), 4, "inference activations");
    bs->rope_sin = xcalloc(R * (C / c->H / 2 + 1), 4, "inference activations");
}

static void block_free(BlockState *bs) {
    float *bufs[] = {bs->s.x, bs->kv, bs->logits, bs->losses, bs->rope_cos, bs->rope_sin};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) free(bufs[i]);
    memset(bs, 0, sizeof(*bs));
}

/* keys of layer l (its values follow them: max_context + rows further) */
static float *block_keys(const BlockState *bs, int l) {
    size_t kv_rows = (size_t)bs->max_context + bs->rows;
    return bs->kv + (bs->context ? (size_t)l * 2 * kv_rows * bs->m->cfg.C : 0);
}

/* The forward pass over B sequences of T positions (context: B = 1, at bs->pos, after the
 * held context). With targets, bs->losses gets each position's loss (the logits in chunks
 * of logit_rows); without, bs->logits gets the last position's logits. sinks (optional):
 * where the attention goes, for queries below position reach. */
static void block_forward(BlockState *bs, const int *inputs, const int *targets, int B, int T,
                          SinkStats *sinks, int reach) {
    const Model *m = bs->m;
    const ModelConfig *c = &m->cfg;
    int N = B * T, C = c->C, V = c->V, H = c->H, D = C / H, ctx = bs->ctx;
    long pos0 = bs->context ? bs->pos : 0;
    size_t kv_rows = (size_t)bs->max_context + bs->rows;
    if (N > bs->rows || (bs->context && B != 1))
        die("block_forward: %d x %d positions do not fit the block", B, T);
    check_tokens(inputs, targets, N, V, pos0);
    if (c->rope) rope_tables(bs->rope_cos, bs->rope_sin, T, D, c->rope_theta, pos0);
    embedding_forward(bs->s.x, inputs, m->param.wte, N, C);
    for (int l = 0; l < c->L; l++) {
        LayerActs s = bs->s;
        s.k = block_keys(bs, l) + (size_t)ctx * C; /* after the context's keys */
        s.v = s.k + kv_rows * C;
        layer_forward(m, l, &s, B, T, ctx, bs->rope_cos, bs->rope_sin, bs->window);
        if (sinks)
            sink_stats_add_band(sinks, l, s.att, B, H, T, band_width(bs->window, ctx + T), pos0,
                                reach);
    }
    float *h = bs->s.h;
    rmsnorm_forward(h, NULL, bs->s.x, m->param.final_norm, N, C);
    if (targets) {
        for (int r0 = 0; r0 < N; r0 += bs->logit_rows) {
            int rows = N - r0 < bs->logit_rows ? N - r0 : bs->logit_rows;
            matmul_forward(bs->logits, h + (long)r0 * C, m->param.lm_head, rows, C, V);
            crossentropy_forward(bs->losses + r0, bs->logits, targets + r0, rows, V);
        }
    } else {
        matmul_forward(bs->logits, h + (long)(N - 1) * C, m->param.lm_head, 1, C, V);
    }
    if (!bs->context) return;
    int keep = ctx + T < bs->max_context ? ctx + T : bs->max_context;
    for (int l = 0; l < c->L && keep < ctx + T; l++) { /* the last keys: the next block's context */
        float *keys = block_keys(bs, l);
        float *values = keys + kv_rows * C;
        size_t drop = (size_t)(ctx + T - keep) * C;
        memmove(keys, keys + drop, (size_t)keep * C * sizeof(float));
        memmove(values, values + drop, (size_t)keep * C * sizeof(float));
    }
    bs->ctx = keep;
    bs->pos += T;
}

/* Add n losses to the total in order, and to the dump if there is one. */
static void add_losses(double *total, const float *losses, long n, FILE *losses_out) {
    for (long i = 0; i < n; i++) *total += losses[i];
    if (losses_out && fwrite(losses, sizeof(float), (size_t)n, losses_out) != (size_t)n)
        die("cannot write the per-token losses: %s", strerror(errno));
}

/* One long sequence of E positions from token `start` through a context BlockState (reset
 * here), block by block; its losses are added to *total. */
static void run_long_sequence(BlockState *bs, const Shard *s, long start, long E, double *total,
                              FILE *losses_out, SinkStats *sinks, int reach, int *in, int *tg) {
    bs->ctx = 0;
    bs->pos = 0;
    for (long t0 = 0; t0 < E; t0 += bs->rows) {
        int n = E - t0 < bs->rows ? (int)(E - t0) : bs->rows;
        sequence_slice(in, tg, s->tokens, start, t0, n, bs->m->cfg.bos);
        block_forward(bs, in, tg, 1, n, sinks, reach);
        add_losses(total, bs->losses, n, losses_out);
    }
}

/* Every rank's share of an evaluation, summed in rank order (under MPI). */
static void ranks_sum_doubles(double *x, int n);
static void evaluation_over_ranks(double *total, SinkStats *sinks) {
    if (mpi_ranks == 1) return;
    ranks_sum_doubles(total, 1);
    if (!sinks) return;
    int n = sinks->L * sinks->H;
    double queries = (double)sinks->queries;
    ranks_sum_doubles(sinks->first, n);
    ranks_sum_doubles(sinks->row_sum, n);
    ranks_sum_doubles(sinks->share, n);
    ranks_sum_doubles(&queries, 1);
    sinks->queries = (long)queries;
}

/* doc/SPEC.md section 11: chunks = min(max_chunks, floor((N-1)/E)) (max_chunks 0: all);
 * chunk i starts at token iE and is its own sequence (as make_sequence lays it out) with
 * attention window w; returns the mean loss over chunks*E predictions. Short chunks go
 * several to a block (at most `batch`: it changes nothing in the result), a long one in
 * blocks with context; the sum runs in chunk order, bit for bit what model_forward gives.
 * losses_out (optional) receives the per-prediction losses as float32, in chunk order;
 * sinks (optional) accumulates where the attention goes. */
static const char *eval_progress = NULL; /* main sets it to show a long evaluation's progress */
static double evaluate(const Model *m, const Shard *s, int E, int w, long max_chunks,
                       int batch, long *chunks_out, FILE *losses_out, SinkStats *sinks) {
    if (E < 1) die("eval length must be >= 1");
    if (w < 1) die("eval window must be >= 1");
    long chunks = (s->n - 1) / E;
    if (max_chunks > 0 && max_chunks < chunks) chunks = max_chunks;
    if (chunks < 1) die("the eval shard has %ld tokens, fewer than eval length %d + 1", s->n, E);
    int whole = E <= BLOCK_POSITIONS; /* a chunk fits a block */
    int per_block = whole ? BLOCK_POSITIONS / E : 1;
    int reach = band_width(w, E); /* the positions that see position 0 */
    if (batch >= 1 && batch < per_block) per_block = batch;
    if (per_block > chunks) per_block = (int)chunks;
    int rows = whole ? per_block * E : BLOCK_POSITIONS;
    BlockState bs;
    block_init(&bs, m, w, rows, !whole, E, sinks != NULL);
    int *in = xcalloc(rows, sizeof(int), "eval tokens");
    int *tg = xcalloc(rows, sizeof(int), "eval tokens");
    double total = 0.0;
    if (mpi_ranks > 1 && losses_out) die("--dump-losses runs in one process, not over MPI ranks");
    for (long c0 = 0, block = 0; c0 < chunks; c0 += per_block, block++) {
        int nb = chunks - c0 < per_block ? (int)(chunks - c0) : per_block;
        if (block % mpi_ranks != mpi_rank) continue; /* under MPI: rank r takes blocks r, r+R, .. */
        if (whole) {
            for (int b = 0; b < nb; b++)
                make_sequence(in + (long)b * E, tg + (long)b * E, s->tokens, (c0 + b) * E, E,
                              m->cfg.bos);
            block_forward(&bs, in, tg, nb, E, sinks, reach);
            add_losses(&total, bs.losses, (long)nb * E, losses_out);
        } else {
            run_long_sequence(&bs, s, c0 * E, E, &total, losses_out, sinks, reach, in, tg);
        }
        if (sinks) sinks->queries += (long)nb * (reach > 1 ? reach - 1 : 0);
        if (eval_progress && isatty(STDERR_FILENO))
            fprintf(stderr, "\r%s: %ld of %ld chunks", eval_progress, c0 + nb, chunks);
    }
    if (eval_progress && isatty(STDERR_FILENO))
        fprintf(stderr, "\r%*s\r", (int)strlen(eval_progress) + 40, "");
    evaluation_over_ranks(&total, sinks);
    free(in);
    free(tg);
    block_free(&bs);
    if (chunks_out) *chunks_out = chunks;
    return total / ((double)chunks * E);
}

/* Streaming evaluation: the whole shard as one sequence (after the start token, if the
 * model has one): N-1 predictions, of t[1..N) without a start token, of t[0..N-1) with one.
 * With keep_first = 0 that is evaluate() with one chunk of E = N-1, which goes through
 * block_forward a block at a time with w-1 keys and values of context per layer (memory O(w)
 * per layer plus one block, whatever the length). With keep_first > 0 the cache of
 * StreamingLLM (positions counted within the cache) is not ordinary attention, so the text
 * goes token by token through infer_step (see kept_scores_naive). max_tokens > 0 stops after
 * that many predictions. losses_out (optional) receives them as float32. */
static double evaluate_stream(const Model *m, const Shard *s, int w, int keep_first,
                              long max_tokens, FILE *losses_out) {
    long n = s->n - 1;
    if (max_tokens > 0 && max_tokens < n) n = max_tokens;
    int bos = m->cfg.bos;
    double total = 0.0;
    if (keep_first == 0) /* one chunk of n predictions */
        return evaluate(m, s, (int)n, w, 1, 1, NULL, losses_out, NULL);
    InferState st;
    infer_init(&st, m, n < w ? (int)(n > 0 ? n : 1) : w, keep_first, 1);
    for (long i = 0; i < n; i++) {
        int input, target;
        sequence_slice(&input, &target, s->tokens, 0, i, 1, bos);
        infer_step(&st, input);
        float loss;
        crossentropy_forward(&loss, st.logits, &target, 1, m->cfg.V);
        add_losses(&total, &loss, 1, losses_out);
    }
    infer_free(&st);
    return total / n;
}

/* ---- 10.2 generation ------------------------------------------------------------------
 * A prompt goes through block_forward, and its last w-1 keys and values fill the rings of the
 * sequences of an InferState, which then continue token by token (infer_step_n): prefilled,
 * a state is where len calls of infer_step would have left it, to rounding (the products
 * round differently in blocks), and its logits predict the token after the prompt. Every
 * sequence of the state gets the same prompt. With keep_first > 0 the prompt goes token by
 * token instead (StreamingLLM's cache is not ordinary attention, see kept_scores_naive). */
#define PREFILL_PARALLEL_MIN 256 /* positions of a prompt below which one thread runs it */
static void infer_prefill(InferState *s, const int *seq, long len) {
    const Model *m = s->m;
    const ModelConfig *c = &m->cfg;
    int n = s->n, C = c->C, V = c->V, w = s->window;
    if (s->pos != 0) die("infer_prefill: the state has consumed tokens already");
    if (s->keep_first > 0 || len == 0) {
        int *tok = xcalloc(n, sizeof(int), "prompt");
        for (long i = 0; i < len; i++) {
            for (int j = 0; j < n; j++) tok[j] = seq[i];
            infer_step_n(s, tok);
        }
        free(tok);
        return;
    }
    BlockState bs;
    int rows = len < BLOCK_POSITIONS ? (int)len : BLOCK_POSITIONS;
    block_init(&bs, m, w, rows, 1, len, 0); /* a ring of w slots: a window of w (see generate) */
#ifdef _OPENMP
    int threads = omp_get_max_threads(); /* a short prompt is a few ms: threads do not pay */
    if (len < PREFILL_PARALLEL_MIN) omp_set_num_threads(1);
#endif
    for (long t0 = 0; t0 < len; t0 += rows)
        block_forward(&bs, seq + t0, NULL, 1, len - t0 < rows ? (int)(len - t0) : rows, NULL, 0);
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    for (int l = 0; l < c->L; l++) { /* position q's key and value into row q % w of the ring */
        const float *kl = block_keys(&bs, l), *vl = kl + ((size_t)bs.max_context + bs.rows) * C;
        for (int r = 0; r < bs.ctx; r++)
            for (int j = 0; j < n; j++)
                cache_store(s, j, l, (int)((len - bs.ctx + r) % w), 0, C, kl + (size_t)r * C,
                            vl + (size_t)r * C);
    }
    for (int j = 0; j < n; j++) memcpy(s->logits + (size_t)j * V, bs.logits, V * sizeof(float));
    s->pos = len;
    block_free(&bs);
}

/* Feed a prompt (after the model's start token, if it has one) and generate n tokens for each
 * of `samples` sequences at once: sample i draws from its own generator rngs[i] (the command
 * line seeds it with --seed + i), so each sample is exactly the text of a single run with that
 * generator. Attention window `window` (the model's, or another), keep_first: kept_scores_naive.
 * Returns the tokens, samples x n; with one sample and f, they are also printed to f as they
 * come. */
static int *generate(const Model *m, const int *prompt, int prompt_len, int n, int window,
                     int keep_first, double temperature, int top_k, uint64_t *rngs, int samples,
                     const Tokenizer *tk, FILE *f) {
    int bos = m->cfg.bos, V = m->cfg.V;
    long len = (long)(bos >= 0) + prompt_len; /* positions fed before the first sample */
    long positions = len + n; /* a ring of min(window, positions) slots gives the same results */
    int ring = positions < window ? (int)(positions > 0 ? positions : 1) : window;
    int *seq = xcalloc(len > 0 ? len : 1, sizeof(int), "prompt");
    int *out = xcalloc((size_t)samples * n, sizeof(int), "samples");
    int *tok = xcalloc(samples, sizeof(int), "samples");
    if (bos >= 0) seq[0] = bos;
    memcpy(seq + (bos >= 0), prompt, (size_t)prompt_len * sizeof(int));
    InferState s;
    infer_init(&s, m, ring, keep_first, samples);
    infer_prefill(&s, seq, len);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < samples; j++) {
            tok[j] = sample_token(s.logits + (size_t)j * V, V, temperature, top_k, &rngs[j]);
            out[(size_t)j * n + i] = tok[j];
        }
        if (f && samples == 1) {
            print_token(f, tk, tok[0], V);
            fflush(f);
        }
        if (i + 1 < n) infer_step_n(&s, tok);
    }
    infer_free(&s);
    free(seq);
    free(tok);
    return out;
}

/* The attention weights of one layer over a token sequence, written for looking at what
 * the heads attend to. Dense, so that plotting needs no knowledge of the band layout:
 *   "SWATATTN", int32 version 1, layer, H, T, window, attn (0 sigmoid, 1 softmax),
 *   T int32 tokens, then H*T*T float32 weights: [h][m][n] is how much query m takes from
 *   key n (0 outside the window n in (m-window, m]).
 * Sigmoid rows do not sum to 1 (each weight is its own gate); softmax rows do. */
static void dump_attention(Model *m, const int *tokens, int T, int w, int layer,
                           const char *path) {
    const ModelConfig *c = &m->cfg;
    if (layer < 0 || layer >= c->L)
        die("--dump-layer %d: the model has layers 0..%d", layer, c->L - 1);
    if (T > 2048)
        die("--dump-attn: %d tokens is more than 2048 (the dense map would be H*T*T floats)", T);
    model_forward(m, tokens, NULL, 1, T, w);
    int band = m->a.band;
    const float *att = m->a.layer[layer].att; /* (H, T, band), B = 1 */
    float *row = xcalloc(T, sizeof(float), "attention row");
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot open %s for writing: %s", path, strerror(errno));
    int32_t head[6] = {1, layer, c->H, T, w, c->attn};
    int ok = fwrite("SWATATTN", 1, 8, f) == 8 && fwrite(head, sizeof(head), 1, f) == 1;
    for (int i = 0; ok && i < T; i++) {
        int32_t t = tokens[i];
        ok = fwrite(&t, 4, 1, f) == 1;
    }
    for (int h = 0; ok && h < c->H; h++)
        for (int q = 0; ok && q < T; q++) {
            memset(row, 0, (size_t)T * sizeof(float));
            const float *a = att + ((long)h * T + q) * band; /* a[d]: key q-d */
            for (int d = 0; d < band && d <= q; d++) row[q - d] = a[d];
            ok = fwrite(row, sizeof(float), T, f) == (size_t)T;
        }
    if (fclose(f) != 0) ok = 0;
    if (!ok) die("cannot write %s: %s", path, strerror(errno));
    free(row);
}

/* Multiply-adds of one token's matrix products: q, k, v, o, the MLP's three, the classifier. */
static long macs_per_token(const ModelConfig *c) {
    return (long)c->L * (4L * c->C * c->C + 3L * c->C * c->F) + (long)c->V * c->C;
}

/* FLOPs per token of one training step (forward + backward = 3x the forward): 2 per
 * multiply-add of every matrix, and 4*C per key in the band for attention (q.k and a*v). */
static double flops_per_token(const ModelConfig *c, int T, int window) {
    double band = 0.0; /* mean number of keys a query sees */
    for (int m = 0; m < T; m++) band += m + 1 < window ? m + 1 : window;
    band /= T > 0 ? T : 1;
    double matmul = (double)macs_per_token(c);
    return 3.0 * (2.0 * matmul + 4.0 * c->L * band * c->C);
}

/* ------------------------------------------------------------------------------------ */
/* 11. the command line, the training step, main                                         */
/* ------------------------------------------------------------------------------------ */

/* ---- data parallel: the sums over the ranks ---------------------------------------------
 * Under MPI every rank holds the whole model and computes the gradient of its share of the
 * batch; the step needs their sum. MPI_Allreduce does not promise an order of summation, so
 * the sum is made in a fixed one: each rank gathers every rank's values, a segment at a
 * time, and adds them in rank order 0, 1, ..., R-1. Every rank then holds the same bits, the
 * ranks stay in step, and a run with R ranks is bit-identical to itself. Without MPI these
 * do nothing. */
#define RANK_SEGMENT (1 << 18) /* floats gathered at a time: R MB of buffer */
static double ranks_seconds = 0.0; /* time spent summing gradients over the ranks */
static void ranks_sum_floats(float *x, size_t n) {
#ifdef SWAT_MPI
    if (mpi_ranks == 1) return;
    double t0 = now_seconds();
    float *all = scratch_floats(SCRATCH_RANKS, (size_t)mpi_ranks * RANK_SEGMENT);
    for (size_t off = 0; off < n; off += RANK_SEGMENT) {
        int len = n - off < RANK_SEGMENT ? (int)(n - off) : RANK_SEGMENT;
        MPI_Allgather(x + off, len, MPI_FLOAT, all, len, MPI_FLOAT, MPI_COMM_WORLD);
        #pragma omp parallel for schedule(static)
        for (int i = 0; i < len; i++) {
            float sum = all[i];
            for (int r = 1; r < mpi_ranks; r++) sum += all[(size_t)r * len + i];
            x[off + i] = sum;
        }
    }
    ranks_seconds += now_seconds() - t0;
#else
    (void)x;
    (void)n;
#endif
}
static void ranks_sum_doubles(double *x, int n) {
#ifdef SWAT_MPI
    if (mpi_ranks == 1 || n == 0) return;
    double *all = xcalloc((size_t)mpi_ranks * n, sizeof(double), "ranks");
    MPI_Allgather(x, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD);
    for (int i = 0; i < n; i++) {
        double sum = all[i];
        for (int r = 1; r < mpi_ranks; r++) sum += all[(size_t)r * n + i];
        x[i] = sum;
    }
    free(all);
#else
    (void)x;
    (void)n;
#endif
}
/* 1 if the flag is set on any rank (a signal may reach one rank first) */
static int ranks_any(int flag) {
#ifdef SWAT_MPI
    if (mpi_ranks > 1) MPI_Allreduce(MPI_IN_PLACE, &flag, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
    return flag;
}

#ifndef TESTING

/* ---- the command line -------------------------------------------------------------------
 * One table, flag_specs, says everything about a flag: its name, what its value is called,
 * its default, the modes it applies to, where its value goes, how it is parsed and in what
 * range, and its help. Parsing, the error for a flag that the mode would ignore, --help and
 * the flags that --resume takes from a run's log all read it. */
typedef struct {
    const char *train, *val, *out, *save, *init, *resume, *tokenizer; /* file names */
    const char *eval, *dump_losses, *dump_attn;                         /* file names */
    const char *prompt, *prompt_ids;
    ModelConfig model; /* the shape of a new model */
    OptimConfig opt;
    uint64_t seed;
    double temperature;
    int batch, grad_accum, stop_after, shuffle, overwrite, threads;
    int val_every, val_chunks, final_val_chunks, sample_every, sample_len, save_every;
    int eval_len, eval_window, eval_chunks, stream, sinks, keep_first;
    int generate, samples, top_k, dump_layer;
    uint64_t given; /* bit i: flag_specs[i] is on the command line */
    char *log_line; /* --resume: the log's "args" line, which remembered values point into */
    char *run_dir;  /* the checkpoint's folder: --resume without --out (out points there), --init */
} Flags;

enum { /* the modes a flag applies to, and what a checkpoint decides instead of it */
    TRAINING = 1, EVAL = 2, GENERATE = 4, DUMP_ATTN = 8, EVERY_MODE = 15,
    SHAPE = 16,     /* the shape of a new model: with --init or --resume, the checkpoint's */
    RUN = 32,       /* a setting of the run: with --resume, the checkpoint's */
    REMEMBERED = 64 /* --resume takes it from the run's log.txt unless it is given again */
};
enum { AS_SWITCH, AS_TEXT, AS_INT, AS_SEED, AS_REAL, AS_ONOFF, AS_ATTN, AS_ALIBI };

typedef struct {
    const char *name;
    const char *arg;  /* what --help calls the value; NULL: a switch, which takes none */
    const char *dflt; /* the default as --help prints it, parsed into the field first; in
                         parentheses: words, for which the field's 0 (or -1) stands */
    int modes;        /* TRAINING ... DUMP_ATTN, and SHAPE, RUN, REMEMBERED */
    int kind;         /* AS_...: how the value is parsed */
    size_t at;        /* where it goes: the offset of a field of Flags */
    double lo, hi;    /* the range of a number */
    const char *help;
} FlagSpec;

#define AT(field) offsetof(Flags, field)
#define BIG (1 << 30) /* the largest count a flag takes */
/* The order of --help (a heading wherever the modes change) and of the log's "args" line */
static const FlagSpec flag_specs[] = {
    {"--train", "FILE", NULL, TRAINING | REMEMBERED, AS_TEXT, AT(train), 0, 0,
     "training token shard (required); a glob pattern in quotes ('dir/x_*.bin') reads "
     "several shards in sorted order as one stream"},
    {"--val", "FILE", NULL, TRAINING | REMEMBERED, AS_TEXT, AT(val), 0, 0,
     "validation token shard (or a glob)"},
    {"--out", "DIR", "out", TRAINING, AS_TEXT, AT(out), 0, 0,
     "folder for log.txt and model.ckpt (with --resume: the checkpoint's folder)"},
    {"--overwrite", NULL, NULL, TRAINING, AS_SWITCH, AT(overwrite), 0, 0,
     "replace the log.txt and model.ckpt of an earlier run in --out"},
    {"--save", "FILE", NULL, TRAINING, AS_TEXT, AT(save), 0, 0,
     "also write the final checkpoint here"},
    {"--resume", "CKPT", NULL, TRAINING, AS_TEXT, AT(resume), 0, 0,
     "continue a run: weights, optimizer, schedule, data position, sampling; the data "
     "and the periodic flags come from the run's log.txt unless given"},
    {"--steps", "N", "600", TRAINING | RUN, AS_INT, AT(opt.steps), 0, BIG,
     "optimizer steps of the run, the schedule's horizon (0 with --save: the initial model)"},
    {"--stop-after", "N", NULL, TRAINING, AS_INT, AT(stop_after), 1, BIG,
     "stop (and save) after N steps of this invocation; --resume continues the run"},
    {"--batch", "B", "16", TRAINING | RUN, AS_INT, AT(batch), 1, BIG,
     "sequences per step; under mpirun, over all the ranks"},
    {"--grad-accum", "N", "1", TRAINING, AS_INT, AT(grad_accum), 1, BIG,
     "each step in N micro-batches of B/N sequences: the same step, in the memory of B/N"},
    {"--seq", "T", "256", TRAINING | RUN, AS_INT, AT(model.seq_len), 1, BIG,
     "training sequence length"},
    {"--window", "W", "64", TRAINING | RUN, AS_INT, AT(model.window), 1, BIG,
     "attention window w (>= T: vanilla attention)"},
    {"--layers", "L", "4", TRAINING | SHAPE, AS_INT, AT(model.L), 1, 4096, "layers"},
    {"--heads", "H", "8", TRAINING | SHAPE, AS_INT, AT(model.H), 1, 4096, "attention heads"},
    {"--dim", "C", "256", TRAINING | SHAPE, AS_INT, AT(model.C), 1, 65536, "model width"},
    {"--ffn", "F", "704", TRAINING | SHAPE, AS_INT, AT(model.F), 1, 1 << 20, "SwiGLU hidden width"},
    {"--vocab", "V", "256", TRAINING | SHAPE, AS_INT, AT(model.V), 1, 65536,
     "vocabulary size (256: bytes)"},
    {"--attn", "MODE", "sigmoid", TRAINING | SHAPE, AS_ATTN, AT(model.attn), 0, 0,
     "sigmoid (SWAT) or softmax"},
    {"--alibi", "NEG:POS", "(H/2:H/2)", TRAINING | SHAPE, AS_ALIBI, AT(model), 0, 4096,
     "heads with negative:positive ALiBi slopes (0:0 off)"},
    {"--rope", "on|off", "on", TRAINING | SHAPE, AS_ONOFF, AT(model.rope), 0, 0,
     "rotary position embedding of q and k"},
    {"--rope-theta", "N", "10000", TRAINING | SHAPE, AS_INT, AT(model.rope_theta), 1, INT32_MAX,
     "RoPE base"},
    {"--lr", "X", "2e-3", TRAINING | RUN, AS_REAL, AT(opt.lr), 0, 1e3, "peak learning rate"},
    {"--min-lr-ratio", "X", "0.1", TRAINING | RUN, AS_REAL, AT(opt.min_lr_ratio), 0, 1,
     "the cosine decays to lr*X"},
    {"--warmup", "N", "40", TRAINING | RUN, AS_INT, AT(opt.warmup), 0, BIG,
     "linear warmup steps (not given: steps/5 for a run shorter than 200 steps)"},
    {"--wd", "X", "0.1", TRAINING | RUN, AS_REAL, AT(opt.weight_decay), 0, 1e3,
     "AdamW weight decay of the matrices (not of the norm gains)"},
    {"--clip", "X", "1.0", TRAINING | RUN, AS_REAL, AT(opt.clip), 0, 1e30,
     "clip the gradient to this global norm; 0 disables"},
    {"--beta1", "X", "0.9", TRAINING | RUN, AS_REAL, AT(opt.beta1), 0, 0.999999, "AdamW's beta1"},
    {"--beta2", "X", "0.95", TRAINING | RUN, AS_REAL, AT(opt.beta2), 0, 0.999999,
     "AdamW's beta2 (eps is 1e-8)"},
    {"--shuffle", "on|off", "on", TRAINING | RUN, AS_ONOFF, AT(shuffle), 0, 0,
     "shuffled sequences, or the spec's sequential order"},
    {"--val-every", "N", "50", TRAINING | REMEMBERED, AS_INT, AT(val_every), 0, BIG,
     "validation every N steps (0: none during the run)"},
    {"--val-chunks", "N", "64", TRAINING | REMEMBERED, AS_INT, AT(val_chunks), 0, BIG,
     "chunks of length T of the periodic validation (0: all)"},
    {"--final-val-chunks", "N", "0", TRAINING | REMEMBERED, AS_INT, AT(final_val_chunks), -1,
     BIG, "chunks of the validation at the end of the run (0: all; -1: none)"},
    {"--sample-every", "N", "100", TRAINING | REMEMBERED, AS_INT, AT(sample_every), 0, BIG,
     "print a sample every N steps (0: never): 16 tokens of text, '>>>', the model's"},
    {"--sample-len", "N", "200", TRAINING | REMEMBERED, AS_INT, AT(sample_len), 1, BIG,
     "tokens per sample"},
    {"--save-every", "N", "0", TRAINING | REMEMBERED, AS_INT, AT(save_every), 0, BIG,
     "also write the checkpoint every N steps"},
    {"--seed", "N", "1337", TRAINING | GENERATE | RUN, AS_SEED, AT(seed), 0, (double)INT64_MAX,
     "seed of the initialisation, the data order and the sampling"},
    {"--temperature", "X", "0.8", TRAINING | GENERATE | REMEMBERED, AS_REAL, AT(temperature), 0,
     1e3, "sampling temperature (0: greedy)"},
    {"--top-k", "K", "0", TRAINING | GENERATE | REMEMBERED, AS_INT, AT(top_k), 0, 65536,
     "sample from the K most likely tokens (0: all)"},
    {"--tokenizer", "FILE", NULL, EVERY_MODE | REMEMBERED, AS_TEXT, AT(tokenizer), 0, 0,
     "llm.c's tokenizer file: text samples and --prompt, --eval's nats/byte; --init: the run's"},
    {"--init", "CKPT", NULL, EVERY_MODE, AS_TEXT, AT(init), 0, 0,
     "start from a checkpoint's weights and model config (training: with a fresh optimizer)"},
    {"--bos", "ID", "(none)", EVERY_MODE, AS_INT, AT(model.bos), -1, 65535,
     "start token of every sequence (bytes: --vocab 257 --bos 256); --init: the checkpoint's"},
    {"--threads", "N", "(all cores)", EVERY_MODE, AS_INT, AT(threads), 1, 1024,
     "OpenMP threads (or OMP_NUM_THREADS; results do not depend on it); busy machine: see make"},
    {"--eval", "SHARD", NULL, EVAL, AS_TEXT, AT(eval), 0, 0,
     "the loss of the --init model on a shard (doc/SPEC.md); the last line: eval_loss <value>"},
    {"--eval-len", "E", "(model's T)", EVAL, AS_INT, AT(eval_len), 1, BIG, "chunk length"},
    {"--eval-chunks", "N", "0", EVAL, AS_INT, AT(eval_chunks), 0, BIG, "chunks (0: all)"},
    {"--stream", NULL, NULL, EVAL, AS_SWITCH, AT(stream), 0, 0,
     "the whole shard as one sequence, with w-1 keys and values of context (constant memory)"},
    {"--sinks", NULL, NULL, EVAL, AS_SWITCH, AT(sinks), 0, 0,
     "per layer and head, the attention on position 0 (the start token)"},
    {"--dump-losses", "FILE", NULL, EVAL, AS_TEXT, AT(dump_losses), 0, 0,
     "write the per-prediction losses as float32 (chunk after chunk; --stream: per token)"},
    {"--keep-first", "N", "0", EVAL | GENERATE, AS_INT, AT(keep_first), 0, 1 << 20,
     "keep the first N positions beside the last w (StreamingLLM's sinks; --eval: --stream)"},
    {"--eval-window", "W", "(model's w)", EVAL | GENERATE | DUMP_ATTN, AS_INT, AT(eval_window),
     1, BIG, "attention window"},
    {"--generate", "N", NULL, GENERATE, AS_INT, AT(generate), 1, BIG,
     "print N tokens after the prompt (ids: the prompt's, ' | ', then the new ones)"},
    {"--samples", "S", "1", GENERATE, AS_INT, AT(samples), 1, 4096,
     "S continuations at once (faster than S runs), sample i exactly the run with --seed "
     "seed+i, each under a line '--- sample i of S (seed X) ---'"},
    {"--prompt", "TEXT", "(newline)", GENERATE | DUMP_ATTN, AS_TEXT, AT(prompt), 0, 0,
     "the prompt: bytes, or text through --tokenizer (subwords: none, the start token alone)"},
    {"--prompt-ids", "IDS", NULL, GENERATE | DUMP_ATTN, AS_TEXT, AT(prompt_ids), 0, 0,
     "the prompt as token ids (\"464 2068\")"},
    {"--dump-attn", "FILE", NULL, DUMP_ATTN, AS_TEXT, AT(dump_attn), 0, 0,
     "write one layer's attention weights over the prompt (at most 2048 tokens)"},
    {"--dump-layer", "L", "0", DUMP_ATTN, AS_INT, AT(dump_layer), 0, 4096,
     "the layer of --dump-attn"},
};
#define NUM_FLAGS ((int)(sizeof flag_specs / sizeof flag_specs[0]))
_Static_assert(sizeof flag_specs / sizeof flag_specs[0] <= 64, "Flags.given has 64 bits");

static const char *usage_text =
    "usage: train_swat [flags]      (--help: this text)\n"
    "  train:     --train SHARD [--val SHARD] [--init CKPT | --resume CKPT] ...\n"
    "  evaluate:  --init CKPT --eval SHARD ...\n"
    "  generate:  --init CKPT --generate N [--prompt TEXT | --prompt-ids IDS] ...\n"
    "  look:      --init CKPT --dump-attn FILE --prompt TEXT [--dump-layer L] [--generate N ...]\n"
    "Each flag is listed under the modes it applies to; in another mode it is an error. A default\n"
    "in parentheses says what happens without the flag.\n";

static int flag_index(const char *name) {
    for (int i = 0; i < NUM_FLAGS; i++)
        if (!strcmp(flag_specs[i].name, name)) return i;
    return -1;
}
static int flag_given(const Flags *flags, const char *name) {
    int i = flag_index(name);
    return i >= 0 && (flags->given >> i & 1);
}

/* "training", "--eval, --generate", "every mode": the names of the modes in a flag's bits */
static const char *modes_text(int modes) {
    static const char *const names[] = {"training", "--eval", "--generate", "--dump-attn"};
    static char text[64];
    if ((modes & EVERY_MODE) == EVERY_MODE) return "every mode";
    text[0] = 0;
    for (int i = 0; i < 4; i++)
        if (modes >> i & 1) strcat(strcat(text, text[0] ? ", " : ""), names[i]);
    return text;
}

/* --help: the usage, then a line "  --flag ARG  default  help" per flag, the help broken at
 * spaces to end before column 100, under a heading wherever the modes change. */
static void print_help_and_exit(void) {
    fputs(usage_text, stdout);
    for (int i = 0; i < NUM_FLAGS; i++) {
        const FlagSpec *spec = &flag_specs[i];
        if (i == 0 || (spec->modes ^ spec[-1].modes) & EVERY_MODE)
            printf("\n%s:\n", modes_text(spec->modes));
        char name[32];
        snprintf(name, sizeof name, "%s %s", spec->name, spec->arg ? spec->arg : "");
        int column = printf("  %-21s %-11s", name, spec->dflt ? spec->dflt : "");
        for (const char *word = spec->help; *word; word += strspn(word, " ")) {
            int n = (int)strcspn(word, " ");
            if (column > 35 && column + 1 + n > 100) /* a new line, indented as the help */
                column = printf("\n%35s", "") - 1;
            column += printf(" %.*s", n, word);
            word += n;
        }
        printf("\n");
    }
    exit(0);
}

static long parse_int(const char *flag, const char *s, double lo, double hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    long top = hi < 0x1p63 ? (long)hi : LONG_MAX; /* (double)INT64_MAX rounds up to 2^63 */
    if (errno || end == s || *end) die("%s: '%s' is not an integer", flag, s);
    if (v < lo || v > top) die("%s: %ld is out of range [%ld, %ld]", flag, v, (long)lo, top);
    return v;
}

static double parse_double(const char *flag, const char *s, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) die("%s: '%s' is not a number", flag, s);
    if (v < lo || v > hi) die("%s: %g is out of range [%g, %g]", flag, v, lo, hi);
    return v;
}

/* 0 for word0, 1 for word1 */
static int parse_word(const char *flag, const char *s, const char *word0, const char *word1) {
    if (strcmp(s, word0) && strcmp(s, word1))
        die("%s: expected %s or %s, got '%s'", flag, word0, word1, s);
    return strcmp(s, word0) != 0;
}

static void parse_alibi(ModelConfig *model, const char *s, double hi) {
    const char *colon = strchr(s, ':');
    char neg[32];
    size_t len = colon ? (size_t)(colon - s) : 0;
    if (len == 0 || len >= sizeof neg) die("--alibi: expected NEG:POS, got '%s'", s);
    memcpy(neg, s, len);
    neg[len] = 0;
    model->alibi_neg = (int)parse_int("--alibi", neg, 0, hi);
    model->alibi_pos = (int)parse_int("--alibi", colon + 1, 0, hi);
}

/* Parse text as the value of a flag, into the field where the flag's value goes. */
static void set_flag(Flags *flags, const FlagSpec *spec, const char *text) {
    char *field = (char *)flags + spec->at;
    const char *name = spec->name;
    double lo = spec->lo, hi = spec->hi;
    if (spec->kind == AS_SWITCH) *(int *)field = 1;
    if (spec->kind == AS_TEXT) *(const char **)field = text;
    if (spec->kind == AS_INT) *(int *)field = (int)parse_int(name, text, lo, hi);
    if (spec->kind == AS_SEED) *(uint64_t *)field = (uint64_t)parse_int(name, text, lo, hi);
    if (spec->kind == AS_REAL) *(double *)field = parse_double(name, text, lo, hi);
    if (spec->kind == AS_ONOFF) *(int *)field = 1 - parse_word(name, text, "on", "off");
    if (spec->kind == AS_ATTN) *(int *)field = parse_word(name, text, "sigmoid", "softmax");
    if (spec->kind == AS_ALIBI) parse_alibi((ModelConfig *)field, text, hi);
}

/* The rules between flags: what a mode needs, what excludes what. */
static void check_flag_rules(const Flags *f) {
    if (f->init && f->resume) die("--init and --resume exclude each other");
    if ((f->eval || f->generate) && !f->init)
        die("%s needs --init CKPT", f->eval ? "--eval" : "--generate");
    if (f->eval && f->generate) die("--eval and --generate exclude each other");
    if (f->stream && !f->eval) die("--stream needs --eval SHARD");
    if (flag_given(f, "--samples") && !f->generate) die("--samples needs --generate N");
    if (f->dump_losses && !f->eval) die("--dump-losses needs --eval SHARD");
    if (flag_given(f, "--keep-first") && !f->stream && !f->generate)
        die("--keep-first works with --eval SHARD --stream and with --generate N");
    if (f->sinks && (!f->eval || f->stream)) die("--sinks needs --eval SHARD (without --stream)");
    if (f->dump_attn && !f->init) die("--dump-attn needs --init CKPT");
    if (f->dump_attn && f->eval) die("--dump-attn works on --prompt TEXT, not with --eval");
    if (flag_given(f, "--dump-layer") && !f->dump_attn) die("--dump-layer needs --dump-attn FILE");
    if (f->prompt && f->prompt_ids) die("--prompt and --prompt-ids exclude each other");
}

/* A flag that the mode would ignore, or whose value the checkpoint of --init or --resume
 * decides, is an error that names it: `--eval ... --window 8` must not quietly evaluate with
 * another window. */
static void check_flags_apply(const Flags *f) {
    int mode = f->eval ? EVAL : f->generate ? GENERATE : f->dump_attn ? DUMP_ATTN : TRAINING;
    int modes = mode | (f->dump_attn ? DUMP_ATTN : 0);
    char mode_name[16];
    snprintf(mode_name, sizeof mode_name, "%s", modes_text(mode));
    if (mode != TRAINING && flag_given(f, "--window"))
        die("--window does not apply to %s: its attention window is --eval-window W", mode_name);
    if (mode == EVAL && flag_given(f, "--seq"))
        die("--seq does not apply to --eval: the chunk length is --eval-len E");
    for (int i = 0; i < NUM_FLAGS; i++) {
        const char *name = flag_specs[i].name;
        int bits = flag_specs[i].modes;
        if (!(f->given >> i & 1)) continue;
        if ((f->init || f->resume) && (bits & SHAPE))
            die("%s cannot be used with %s (the model comes from the checkpoint)", name,
                f->init ? "--init" : "--resume");
        if (f->resume && (bits & RUN))
            die("%s cannot be used with --resume (the run's settings come from the checkpoint)",
                name);
        if (!(bits & modes))
            die("%s does not apply to %s: it applies to %s", name, mode_name, modes_text(bits));
    }
}

static void parse_args(Flags *flags, int argc, char **argv) {
    memset(flags, 0, sizeof *flags);
    flags->model.bos = -1;       /* (none) */
    flags->model.alibi_neg = -1; /* (H/2:H/2), once H is known */
    flags->model.version = CKPT_VERSION;
    flags->opt.eps = 1e-8;
    for (const FlagSpec *spec = flag_specs; spec < flag_specs + NUM_FLAGS; spec++)
        if (spec->dflt && spec->dflt[0] != '(') set_flag(flags, spec, spec->dflt);
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i], *value = NULL;
        int k = flag_index(name);
        if (!strcmp(name, "--help") || !strcmp(name, "-h")) print_help_and_exit();
        if (strncmp(name, "--", 2) != 0)
            die("unexpected argument '%s' (flags start with --; see --help)", name);
        if (k < 0) die("unknown flag %s (see --help)", name);
        flags->given |= 1ull << k;
        if (flag_specs[k].kind != AS_SWITCH && !(value = i + 1 < argc ? argv[++i] : NULL))
            die("%s needs a value (see --help)", name);
        set_flag(flags, &flag_specs[k], value);
    }
    if (flags->model.alibi_neg < 0) /* (H/2:H/2) */
        flags->model.alibi_neg = flags->model.alibi_pos = flags->model.H / 2;
    check_flag_rules(flags);
    check_flags_apply(flags);
}

/* The log's line "args", tab-separated: the remembered flags of the run, which --resume takes
 * from it when they are not given again (a value with a tab or a newline is not recorded). */
static void log_args(FILE *logf, const Flags *flags) {
    fputs("args", logf);
    for (const FlagSpec *spec = flag_specs; spec < flag_specs + NUM_FLAGS; spec++) {
        const char *field = (const char *)flags + spec->at;
        char number[32];
        const char *value = spec->kind == AS_TEXT ? *(const char *const *)field : number;
        if (!(spec->modes & REMEMBERED)) continue; /* AS_TEXT, AS_INT or AS_REAL */
        if (spec->kind == AS_REAL) snprintf(number, sizeof number, "%g", *(const double *)field);
        if (spec->kind == AS_INT) snprintf(number, sizeof number, "%d", *(const int *)field);
        if (value && !strpbrk(value, "\t\n\r")) fprintf(logf, "\t%s\t%s", spec->name, value);
    }
    fputc('\n', logf);
}

/* Fill the remembered flags that were not given from the last "args" line of dir/log.txt; with
 * `only` (--init: "--tokenizer"), that flag alone, said on stderr (stdout may be a sample). */
static void resume_settings(Flags *flags, const char *dir, const char *only) {
    char log_path[4200];
    snprintf(log_path, sizeof log_path, "%s/log.txt", dir);
    FILE *f = fopen(log_path, "r");
    char *line = NULL, *last = NULL;
    size_t cap = 0, used = 0;
    while (f && getline(&line, &cap, f) > 0) {
        if (strncmp(line, "args\t", 5) != 0) continue;
        free(last);
        last = line; /* getline allocates the next line anew */
        line = NULL;
        cap = 0;
    }
    free(line);
    if (f) fclose(f);
    if (!last) return;
    flags->log_line = last;
    last[strcspn(last, "\n")] = 0;
    char taken[512] = "";
    char *save = NULL, *value, *name = strtok_r(last + 5, "\t", &save);
    for (; name && (value = strtok_r(NULL, "\t", &save)); name = strtok_r(NULL, "\t", &save)) {
        int k = flag_index(name);
        if (k < 0 || !(flag_specs[k].modes & REMEMBERED) || (flags->given >> k & 1)) continue;
        if (only && strcmp(name, only)) continue;
        set_flag(flags, &flag_specs[k], value);
        if (used < sizeof taken - 1)
            used += (size_t)snprintf(taken + used, sizeof taken - used, " %s %s", name, value);
    }
    if (used)
        fprintf(only ? stderr : stdout, "%s: from %s:%s%s\n", only ? "init" : "resume", log_path,
                taken, used < sizeof taken - 1 ? "" : " ...");
}

/* ---- evaluation and generation ------------------------------------------------------- */

static void check_tokenizer(const Tokenizer *tk, const Model *m, const char *path) {
    if (tk->V > 0 && tk->V != m->cfg.V)
        die("--tokenizer %s has %d tokens but the model's vocabulary is %d", path, tk->V, m->cfg.V);
}

/* --bos with --init or --resume must say what the checkpoint says: a model's start token
 * is part of what its weights mean. */
static void check_bos(const Flags *flags, const Model *m, const char *path) {
    int bos = flags->model.bos;
    if (!flag_given(flags, "--bos") || bos == m->cfg.bos) return;
    if (m->cfg.version == 1)
        die("--bos %d: %s is a version 1 checkpoint, which has no start token", bos, path);
    if (m->cfg.bos < 0) die("--bos %d: %s was trained without a start token", bos, path);
    die("--bos %d: %s was trained with start token %d", bos, path, m->cfg.bos);
}

/* The sink diagnostics of an evaluation: one line per layer and head, then the count. */
static void print_sinks(FILE *f, const SinkStats *st) {
    double n = st->queries > 0 ? (double)st->queries : 1.0;
    for (int i = 0; i < st->L * st->H; i++)
        fprintf(f, "sink layer %d head %d first %.4f row_sum %.4f share %.4f\n", i / st->H,
                i % st->H, st->first[i] / n, st->row_sum[i] / n, st->share[i] / n);
    fprintf(f, "sink_heads %d of %d (share > %.1f, row sum >= %.2f)\n", sink_heads(st),
            st->L * st->H, SINK_THRESHOLD, SINK_MIN_ROW_SUM);
}

static void run_eval(Model *m, const Flags *flags, const Tokenizer *tk) {
    Shard s;
    shard_load(&s, flags->eval, m->cfg.V);
    int E = flags->eval_len ? flags->eval_len : (m->cfg.seq_len > 0 ? m->cfg.seq_len : 256);
    int w = flags->eval_window ? flags->eval_window : m->cfg.window;
    double t0 = now_seconds(), loss;
    long predictions, chunks;
    FILE *dump = NULL;
    if (flags->dump_losses && !(dump = fopen(flags->dump_losses, "wb")))
        die("cannot open %s for writing: %s", flags->dump_losses, strerror(errno));
    if (flags->stream) {
        loss = evaluate_stream(m, &s, w, flags->keep_first, 0, dump);
        predictions = s.n - 1;
        printf("stream: %ld tokens as one sequence, window %d, keep first %d, %.1fs\n", s.n - 1, w,
               flags->keep_first, now_seconds() - t0);
    } else {
        SinkStats sinks;
        SinkStats *st = flags->sinks ? &sinks : NULL;
        if (st) sink_stats_init(st, &m->cfg);
        /* batch 0: as many chunks at once as fit */
        loss = evaluate(m, &s, E, w, flags->eval_chunks, 0, &chunks, dump, st);
        predictions = chunks * E;
        printf("eval: %ld chunks of %d tokens, window %d, %.1fs\n", chunks, E, w,
               now_seconds() - t0);
        if (st) print_sinks(stdout, st);
        if (st) sink_stats_free(st);
    }
    if (dump && fclose(dump) != 0) die("cannot write %s: %s", flags->dump_losses, strerror(errno));
    if (tk->V > 0) { /* nats per byte of the text: a loss to compare across tokenizers */
        long first = m->cfg.bos < 0 ? 1 : 0; /* the targets are t[first .. first+predictions) */
        double bytes = 0;
        for (long i = first; i < first + predictions; i++)
            bytes += (double)(tk->offset[s.tokens[i] + 1] - tk->offset[s.tokens[i]]);
        printf("nats per byte: %.6f (%ld predicted tokens, %.0f bytes of text; %.3f bytes per "
               "token)\n", loss * predictions / bytes, predictions, bytes, bytes / predictions);
    }
    printf("eval_loss %.8f\n", loss);
    free(s.tokens);
}

/* The prompt as token ids: --prompt TEXT is bytes or the tokenizer's tokens, --prompt-ids
 * "464 2068" ids separated by spaces, commas or tabs; none: "\n", or subwords: nothing. */
static int *prompt_tokens(const Model *m, const Flags *flags, const Tokenizer *tk, int *n_out) {
    int V = m->cfg.V, n = 0;
    const char *text = flags->prompt_ids ? flags->prompt_ids : flags->prompt ? flags->prompt : "\n";
    int *tokens = xcalloc(strlen(text) + 1, sizeof(int), "prompt");
    if (!flags->prompt_ids && !flags->prompt && V > 257) {
        if (m->cfg.bos < 0) die("no start token to begin from: give --prompt TEXT or --prompt-ids");
    } else if (flags->prompt_ids) {
        for (const char *p = text + strspn(text, " ,\t"); *p; p += strspn(p, " ,\t")) {
            char *end;
            errno = 0;
            long id = strtol(p, &end, 10);
            if (end == p || errno) die("--prompt-ids: '%s' is not a list of token ids", text);
            if (id < 0 || id >= V)
                die("--prompt-ids: token %ld is not below the vocabulary size %d", id, V);
            tokens[n++] = (int)id;
            p = end;
        }
        if (n == 0) die("--prompt-ids is empty");
    } else if (!*text) {
        die("--prompt is empty");
    } else if (tk->V > 0) { /* text through the tokenizer's tokens */
        n = tokenizer_encode(tk, text, tokens);
        if (n < 0)
            die("--prompt: some byte of it is no token of the tokenizer (give --prompt-ids)");
    } else {
        if (V > 257)
            die("--prompt TEXT for a vocabulary of %d tokens needs --tokenizer FILE (or give "
                "--prompt-ids)", V);
        for (; text[n]; n++) { /* bytes */
            tokens[n] = (unsigned char)text[n];
            if (tokens[n] >= V)
                die("--prompt: byte %d at offset %d is not below the vocabulary size %d", tokens[n],
                    n, V);
        }
    }
    *n_out = n;
    return tokens;
}

/* The prompt echoed before its continuation: as text (not the default prompt, a newline), or
 * as ids and then "| ", so that the generated ids stand apart. */
static void echo_prompt(const Flags *flags, const int *tokens, int n, int text, const Tokenizer *tk,
                        int V) {
    if (text && !flags->prompt && !flags->prompt_ids) return;
    for (int i = 0; i < n; i++) print_token(stdout, tk, tokens[i], V);
    if (!text) fputs("| ", stdout);
}

static void run_generate(Model *m, const Flags *flags, const Tokenizer *tk) {
    int n, V = m->cfg.V, text = V == 256 || V == 257 || tk->V > 0; /* the output is text, or ids */
    int *tokens = prompt_tokens(m, flags, tk, &n);
    int w = flags->eval_window ? flags->eval_window : m->cfg.window;
    int samples = flags->samples, len = flags->generate;
    if (flags->dump_attn) { /* the model's start token first, as in training */
        int bos = m->cfg.bos >= 0;
        int *seq = xcalloc((size_t)n + bos, sizeof(int), "prompt");
        if (bos) seq[0] = m->cfg.bos;
        memcpy(seq + bos, tokens, (size_t)n * sizeof(int));
        dump_attention(m, seq, n + bos, w, flags->dump_layer, flags->dump_attn);
        fprintf(stderr, "wrote the layer-%d attention over %d prompt tokens%s (window %d) to %s\n",
                flags->dump_layer, n, bos ? " after the start token" : "", w, flags->dump_attn);
        free(seq);
    }
    uint64_t *rngs = xcalloc(samples, sizeof(uint64_t), "samples");
    for (int j = 0; j < samples; j++) rngs[j] = flags->seed + (uint64_t)j; /* the run of seed+j */
    if (len > 0 && samples == 1) echo_prompt(flags, tokens, n, text, tk, V);
    double t0 = now_seconds();
    FILE *live = samples == 1 ? stdout : NULL; /* one sample is printed as it comes */
    int *out = NULL;
    if (len > 0)
        out = generate(m, tokens, n, len, w, flags->keep_first, flags->temperature, flags->top_k,
                       rngs, samples, tk, live);
    double dt = now_seconds() - t0;
    for (int j = 0; samples > 1 && j < samples; j++) { /* made together, printed one by one */
        printf("%s--- sample %d of %d (seed %llu) ---\n", j ? "\n" : "", j + 1, samples,
               (unsigned long long)(flags->seed + j));
        echo_prompt(flags, tokens, n, text, tk, V);
        for (int i = 0; i < len; i++) print_token(stdout, tk, out[(size_t)j * len + i], V);
    }
    if (len > 0) {
        struct rusage ru;
        char many[48] = "";
        getrusage(RUSAGE_SELF, &ru); /* ru_maxrss is in kilobytes on Linux */
        if (samples > 1) snprintf(many, sizeof many, "%d samples of ", samples);
        printf("\n");
        fflush(stdout);
        fprintf(stderr, "generated %s%d tokens after a %d-token prompt (window %d) in %.2f s: %.1f "
                "tokens/s%s, peak RSS %.1f MB\n", many, len, n, w, dt,
                ((double)samples * len + n) / dt, samples > 1 ? " in total" : "",
                ru.ru_maxrss / 1024.0);
    }
    free(out);
    free(rngs);
    free(tokens);
}

/* --eval, --generate, --dump-attn: the model of --init, then the mode's work */
static void run_inference(const Flags *flags, const Tokenizer *tk) {
    Model model;
    checkpoint_load(flags->init, &model, NULL);
    check_bos(flags, &model, flags->init);
    check_tokenizer(tk, &model, flags->tokenizer);
    if (flags->eval) run_eval(&model, flags, tk);
    else run_generate(&model, flags, tk);
    model_free(&model);
}

/* ---- training ------------------------------------------------------------------------ */

/* A training run: the model, the state a checkpoint keeps beside it, the data and the log. */
typedef struct {
    const Flags *flags;
    const Tokenizer *tokenizer;
    Model model;
    TrainState state;      /* step, optimizer settings, data position, sampling generator */
    TrainState step_start; /* the state at the start of this step, which a deferred save writes */
    int save_pending;      /* --save-every: write step_start once this step's loss is finite */
    int micro_batches;     /* --grad-accum: forward and backward passes per rank and step */
    int micro_batch;       /* sequences per pass: B / (ranks * micro_batches) */
    int *inputs, *targets; /* (B, T): the step's batch, of which this rank reads its share */
    Shard train, val;      /* val.n == 0: no validation */
    Loader loader;
    FILE *log;             /* log.txt; under MPI only rank 0 writes it (the others /dev/null) */
    char *log_path, *ckpt_path;
    double seconds;        /* time in the steps of this invocation */
    int timed_steps;
} Training;

static void print_config(FILE *f, const Model *m, const TrainState *st) {
    const ModelConfig *c = &m->cfg;
    const OptimConfig *o = &st->opt;
    char bos[16] = "none";
    if (c->bos >= 0) snprintf(bos, sizeof bos, "%d", c->bos);
    fprintf(f, "model: V=%d L=%d H=%d C=%d F=%d window=%d attn=%s alibi=%d:%d rope=%s theta=%d "
            "bos=%s version=%d\n", c->V, c->L, c->H, c->C, c->F, c->window,
            c->attn == ATTN_SIGMOID ? "sigmoid" : "softmax", c->alibi_neg, c->alibi_pos,
            c->rope ? "on" : "off", c->rope_theta, bos, c->version);
    fprintf(f, "parameters: %zu (%.2f M)\n", m->num_params, m->num_params / 1e6);
    fprintf(f, "train: batch=%d seq=%d steps=%d lr=%g min_lr_ratio=%g warmup=%d wd=%g clip=%g "
            "seed=%llu shuffle=%s threads=%d\n", st->B, st->T, o->steps, o->lr, o->min_lr_ratio,
            o->warmup, o->weight_decay, o->clip, (unsigned long long)st->seed,
            st->shuffle ? "on" : "off", num_threads());
    fprintf(f, "flops per token (forward+backward): %.1f M\n",
            flops_per_token(c, st->T, c->window) / 1e6);
}

/* The model of the run and its state: from --resume's checkpoint (the data and the periodic
 * flags from the run's log.txt unless given again), from --init's weights, or new. */
static void load_model(Training *run, Flags *flags, Tokenizer *tk) {
    Model *m = &run->model;
    TrainState *st = &run->state;
    if (flags->resume) {
        if (!checkpoint_load(flags->resume, m, st))
            die("%s: has no optimizer state to resume from (use --init)", flags->resume);
        check_bos(flags, m, flags->resume);
        if (!flag_given(flags, "--out")) flags->out = flags->run_dir = dir_of(flags->resume);
        resume_settings(flags, flags->out, NULL);
        if (flags->tokenizer && !tk->V) tokenizer_load(tk, flags->tokenizer); /* named by the log */
        m->cfg.seq_len = st->T;
        if (st->step >= st->opt.steps)
            die("%s: the run is complete (%d of %d steps)", flags->resume, st->step, st->opt.steps);
    } else if (flags->init) {
        checkpoint_load(flags->init, m, NULL);
        check_bos(flags, m, flags->init);
        if (flag_given(flags, "--window")) m->cfg.window = flags->model.window;
        if (flag_given(flags, "--seq") || !m->cfg.seq_len) m->cfg.seq_len = flags->model.seq_len;
    } else {
        const char *problem = config_problem(&flags->model);
        if (problem) die("invalid model configuration: %s", problem);
        model_create(m, &flags->model);
        param_init(&m->cfg, m->params, flags->seed);
    }
    if (!flags->resume) {
        st->opt = flags->opt;
        st->B = flags->batch;
        st->T = m->cfg.seq_len;
        st->seed = flags->seed;
        st->shuffle = flags->shuffle;
        st->sample_rng = flags->seed ^ 0x73616D706C65ull; /* "sample" */
    }
    check_tokenizer(tk, m, flags->tokenizer);
    if (m->cfg.version == 1)
        printf("note: %s is a version 1 checkpoint: the model keeps its ALiBi slopes (2^-k) and is "
               "saved as version 1 (no start token, no checksum)\n",
               flags->init ? flags->init : flags->resume);
}

/* How a step splits over ranks and micro-batches, the warmup of a short run, whether the
 * activations fit. Returns 1 if the default warmup was fitted to a short run. */
static int plan_steps(Training *run) {
    const Flags *flags = run->flags;
    OptimConfig *o = &run->state.opt;
    int B = run->state.B, micro = flags->grad_accum, T = run->state.T;
    if (B % (mpi_ranks * micro) != 0 && mpi_ranks > 1)
        die("--batch %d does not split over %d ranks x --grad-accum %d", B, mpi_ranks, micro);
    if (B % micro != 0) die("--batch %d is not a multiple of --grad-accum %d", B, micro);
    run->micro_batches = micro;
    run->micro_batch = B / (mpi_ranks * micro);
    if (o->steps == 0) return 0; /* nothing to train: main writes the model */
    if (!flags->train && flags->resume)
        die("--resume: give --train FILE: %s/log.txt, which would name it, is missing", flags->out);
    if (!flags->train) die("--train FILE is required for training (see --help)");
    int fitted = !flags->resume && !flag_given(flags, "--warmup") && o->warmup > o->steps / 5;
    if (fitted) o->warmup = o->steps / 5;
    if (o->warmup > o->steps)
        die("--warmup %d is longer than the run (--steps %d): pass --warmup %d or less", o->warmup,
            o->steps, o->steps);
    double gb = activation_bytes(&run->model.cfg, run->micro_batch, T, run->model.cfg.window) / 1e9;
    if (gb > 20)
        die("batch %d x sequence %d needs %.1f GB of activations; reduce --batch or --seq, or "
            "raise --grad-accum", run->micro_batch, T, gb);
    return fitted;
}

/* mkdir -p: create the directory and any missing parents. */
static void mkdir_p(const char *dir) {
    char *path = xcalloc(strlen(dir) + 1, 1, "path");
    struct stat st;
    for (size_t i = 0; dir[i]; i++) {
        path[i] = dir[i];
        if (dir[i + 1] && dir[i + 1] != '/') continue; /* path: dir up to a '/' or its end */
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            die("%s: cannot create output directory: %s", path, strerror(errno));
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) die("%s: is not a directory", dir);
    free(path);
}

/* The data and the loader at the run's position; the --out folder and its log, which begins
 * with the run's configuration. */
static void open_run(Training *run, int warmup_fitted) {
    const Flags *flags = run->flags;
    const TrainState *st = &run->state;
    int V = run->model.cfg.V, T = st->T, resumed = flags->resume != NULL;
    shards_load(&run->train, flags->train, V, "--train");
    if (flags->val) shards_load(&run->val, flags->val, V, "--val");
    if (flags->val && run->val.n < (long)T + 1)
        die("%s: %ld tokens are too few for one validation chunk of %d", flags->val, run->val.n, T);
    loader_init(&run->loader, &run->train, st->B, T, st->shuffle, st->seed, run->model.cfg.bos,
                flags->train);
    if (resumed) loader_seek(&run->loader, st->cursor, st->epoch);
    run->inputs = xcalloc((size_t)st->B * T, sizeof(int), "batch");
    run->targets = xcalloc((size_t)st->B * T, sizeof(int), "batch");
    mkdir_p(flags->out);
    size_t n = strlen(flags->out) + 32;
    run->log_path = xcalloc(n, 1, "path");
    run->ckpt_path = xcalloc(n, 1, "path");
    snprintf(run->log_path, n, "%s/log.txt", flags->out);
    snprintf(run->ckpt_path, n, "%s/model.ckpt", flags->out);
    int had_ckpt = access(run->ckpt_path, F_OK) == 0, had_log = access(run->log_path, F_OK) == 0;
    if (mpi_rank == 0 && !resumed && !flags->overwrite && (had_ckpt || had_log))
        die("%s already holds a run (%s): continue it with --resume %s, choose another --out, or "
            "pass --overwrite to replace it", flags->out, had_ckpt ? "model.ckpt" : "log.txt",
            run->ckpt_path);
    run->log = mpi_rank == 0 ? fopen(run->log_path, resumed ? "a" : "w") : fopen("/dev/null", "w");
    if (!run->log) die("%s: cannot open log file: %s", run->log_path, strerror(errno));
    print_config(stdout, &run->model, st);
    print_config(run->log, &run->model, st);
    log_args(run->log, flags);
    if (warmup_fitted)
        printf("warmup: %d steps (the default 40, fitted to a run of %d steps)\n", st->opt.warmup,
               st->opt.steps);
    if (resumed)
        printf("resuming %s at step %d of %d, into %s\n", flags->resume, st->step, st->opt.steps,
               flags->out);
    if (mpi_ranks > 1 || run->micro_batches > 1)
        printf("data parallel: %d rank%s x %d micro-batch%s of %d sequences per step\n", mpi_ranks,
               mpi_ranks > 1 ? "s" : "", run->micro_batches, run->micro_batches > 1 ? "es" : "",
               run->micro_batch);
    fflush(run->log);
}

/* A validation on `chunks` chunks of length T (0: all) and where its attention went: stdout
 * gets a summary, the log "val STEP loss X" and "sink STEP N M s_0 .. s_{M-1}": N of the M
 * heads are sink heads, s_i the share on position 0 of head i (layer-major). */
static double log_validation(Training *run, int chunks, long *chunks_done) {
    SinkStats st;
    int step = run->state.step, best = 0;
    sink_stats_init(&st, &run->model.cfg);
    double loss = evaluate(&run->model, &run->val, run->state.T, run->model.cfg.window, chunks,
                           run->state.B, chunks_done, NULL, &st);
    int M = st.L * st.H;
    double n = st.queries > 0 ? (double)st.queries : 1.0;
    for (int i = 1; i < M; i++)
        if (st.share[i] > st.share[best]) best = i;
    printf("step %d val_loss %.4f | sink heads %d of %d (most: layer %d head %d, %.2f on position "
           "0)\n", step, loss, sink_heads(&st), M, best / st.H, best % st.H, st.share[best] / n);
    fprintf(run->log, "val %d loss %.6f\nsink %d %d %d", step, loss, step, sink_heads(&st), M);
    for (int i = 0; i < M; i++) fprintf(run->log, " %.4f", st.share[i] / n);
    fprintf(run->log, "\n");
    sink_stats_free(&st);
    return loss;
}

/* The first 16 tokens of the validation (or training) text, ">>>", the model's --sample-len */
static void print_sample(Training *run) {
    const Flags *flags = run->flags;
    const Shard *text = flags->val ? &run->val : &run->train;
    int prompt[16], n = text->n > 16 ? 16 : 0;
    printf("---- sample ----\n");
    for (int i = 0; i < n; i++) prompt[i] = text->tokens[i];
    for (int i = 0; i < n; i++) print_token(stdout, run->tokenizer, prompt[i], run->model.cfg.V);
    printf(">>>");
    free(generate(&run->model, prompt, n, flags->sample_len, run->model.cfg.window, 0,
                  flags->temperature, flags->top_k, &run->state.sample_rng, 1, run->tokenizer,
                  stdout));
    printf("\n----------------\n");
}

/* One optimizer step on the next batch, with the gradient of the mean loss over the batch:
 * each micro-batch's mean loss is backpropagated into the same gradients (model_backward adds),
 * then their sum over the micro-batches and ranks is divided by their number (one of each:
 * nothing is rescaled). A --save-every checkpoint waits for this step: its finite loss shows
 * the weights of the last step sound. Returns the loss, and the gradient's norm and the rate. */
static float train_step(Training *run, double *norm, double *lr) {
    Model *m = &run->model;
    int T = run->state.T, step = run->state.step, passes = run->micro_batches * mpi_ranks;
    loader_next(&run->loader, run->inputs, run->targets); /* this rank takes its share below */
    model_zero_grad(m);
    double loss_sum = 0.0;
    for (int micro = 0; micro < run->micro_batches; micro++) {
        long first = ((long)mpi_rank * run->micro_batches + micro) * run->micro_batch * T;
        loss_sum += model_forward(m, run->inputs + first, run->targets + first, run->micro_batch, T,
                                  m->cfg.window);
        model_backward(m);
    }
    if (mpi_ranks > 1) ranks_sum_floats(m->grads, m->num_params);
    if (mpi_ranks > 1) ranks_sum_doubles(&loss_sum, 1);
    float loss = (float)(loss_sum / passes), inv = 1.0f / (float)passes;
    if (passes > 1) {
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < m->num_params; i++) m->grads[i] *= inv;
    }
    *norm = grad_norm(m->grads, m->num_params);
    if (!isfinite(loss) || !isfinite(*norm)) { /* name the first tensor whose gradient is */
        size_t sizes[NUM_PARAM_TENSORS], off = 0;
        const char *bad = NULL;
        param_sizes(&m->cfg, sizes);
        for (int i = 0; i < NUM_PARAM_TENSORS && isfinite(loss) && !bad; off += sizes[i++])
            if (!isfinite(grad_norm(m->grads + off, sizes[i]))) bad = param_names[i];
        die("step %d: %s went non-finite (loss %g); stopping, the last checkpoint is untouched",
            step + 1, bad ? bad : "the loss", loss);
    }
    if (run->save_pending && mpi_rank == 0) checkpoint_save(run->ckpt_path, m, &run->step_start);
    run->save_pending = 0;
    *lr = lr_at_step(&run->state.opt, step);
    adamw_step(m, &run->state.opt, step, *lr, *norm);
    run->state.step++;
    return loss;
}

static void log_step(Training *run, float loss, double lr, double norm, double seconds) {
    const TrainState *st = &run->state;
    double tokens_per_s = st->B * st->T / seconds, eta;
    char eta_text[32];
    run->seconds += seconds;
    run->timed_steps++;
    eta = run->seconds / run->timed_steps * (st->opt.steps - st->step);
    if (eta < 60) snprintf(eta_text, sizeof eta_text, "%.0fs", eta);
    else if (eta < 3600) snprintf(eta_text, sizeof eta_text, "%dm%02ds", (int)eta / 60,
                                  (int)eta % 60);
    else snprintf(eta_text, sizeof eta_text, "%dh%02dm", (int)eta / 3600, (int)eta % 3600 / 60);
    printf("step %5d/%d | loss %.4f | lr %.2e | norm %6.3f | %6.1f ms | %6.0f tok/s | eta %s\n",
           st->step, st->opt.steps, loss, lr, norm, seconds * 1e3, tokens_per_s, eta_text);
    fprintf(run->log, "step %d loss %.6f lr %.6e norm %.6f ms %.2f tok_s %.1f\n", st->step, loss,
            lr, norm, seconds * 1e3, tokens_per_s);
    fflush(stdout);
    fflush(run->log);
}

/* The end of a run: the validation on --final-val-chunks chunks and a last sample if the run
 * went all the way; the checkpoint in --out (and --save) in any case. */
static void finish_run(Training *run, const char *program) {
    const Flags *flags = run->flags;
    TrainState *st = &run->state;
    if (st->step == st->opt.steps && flags->val && flags->final_val_chunks >= 0) {
        long chunks;
        double t0 = now_seconds();
        eval_progress = "final validation";
        double loss = log_validation(run, flags->final_val_chunks, &chunks);
        eval_progress = NULL;
        printf("final validation: %ld chunks of %d tokens in %.1f s (--final-val-chunks sets how "
               "many)\n", chunks, st->T, now_seconds() - t0);
        fprintf(run->log, "final_val_loss %.6f\n", loss);
    }
    if (st->step == st->opt.steps && mpi_rank == 0 && flags->sample_every) print_sample(run);
    st->cursor = run->loader.cursor;
    st->epoch = run->loader.epoch;
    if (mpi_rank > 0) return;
    checkpoint_save(run->ckpt_path, &run->model, st);
    printf("saved %s (step %d of %d)\n", run->ckpt_path, st->step, st->opt.steps);
    if (st->step < st->opt.steps)
        printf("continue with: %s --resume %s\n", program, run->ckpt_path);
    if (flags->save) checkpoint_save(flags->save, &run->model, st);
    if (flags->save) printf("saved %s\n", flags->save);
}

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { stop_requested = sig; }

#ifdef SWAT_MPI
static void mpi_finish(void) {
    int down = 0;
    MPI_Finalized(&down);
    if (!down) MPI_Finalize();
}
#endif

/* Under MPI this process is one rank of the job, and only rank 0 prints. */
static void mpi_start(void) {
#ifdef SWAT_MPI
    MPI_Init(NULL, NULL);
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mpi_ranks);
    atexit(mpi_finish);
    if (mpi_rank > 0 && !freopen("/dev/null", "w", stdout))
        die("cannot silence rank %d's output", mpi_rank);
#endif
}

int main(int argc, char **argv) {
    mpi_start();
    Flags flags;
    parse_args(&flags, argc, argv);
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit (ulimit -f) then fails a write: one error line */
#ifdef _OPENMP
    if (flags.threads) omp_set_num_threads(flags.threads);
#endif
    Tokenizer tokenizer = {0};
    if (flags.init && !flags.tokenizer) /* the run's tokenizer, as --resume takes it */
        resume_settings(&flags, flags.run_dir = dir_of(flags.init), "--tokenizer");
    if (flags.tokenizer) tokenizer_load(&tokenizer, flags.tokenizer);
    if (flags.eval || flags.generate || flags.dump_attn) {
        run_inference(&flags, &tokenizer);
        tokenizer_free(&tokenizer);
        free(flags.log_line);
        free(flags.run_dir);
        return 0;
    }

    Training run = {.flags = &flags, .tokenizer = &tokenizer};
    TrainState *st = &run.state;
    load_model(&run, &flags, &tokenizer);
    int warmup_fitted = plan_steps(&run);
    if (st->opt.steps == 0) { /* write the freshly initialised (or --init) model */
        if (!flags.save)
            die("--steps 0 trains nothing: give --save FILE to write the initial model");
        if (mpi_rank == 0) checkpoint_save(flags.save, &run.model, NULL);
        printf("wrote %s (%zu parameters, no training)\n", flags.save, run.model.num_params);
        model_free(&run.model);
        return 0;
    }
    open_run(&run, warmup_fitted);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    int end = st->opt.steps;
    if (flags.stop_after && st->step + flags.stop_after < end) end = st->step + flags.stop_after;
    while (st->step < end && !ranks_any(stop_requested != 0)) {
        run.step_start = *st;
        run.step_start.cursor = run.loader.cursor;
        run.step_start.epoch = run.loader.epoch;
        if (flags.val && flags.val_every && st->step % flags.val_every == 0)
            log_validation(&run, flags.val_chunks, NULL);
        fflush(run.log);
        int sample_due = flags.sample_every && st->step > 0 && st->step % flags.sample_every == 0;
        if (mpi_rank == 0 && sample_due) print_sample(&run);
        double t0 = now_seconds(), norm, lr;
        float loss = train_step(&run, &norm, &lr);
        log_step(&run, loss, lr, norm, now_seconds() - t0);
        run.save_pending = flags.save_every && st->step % flags.save_every == 0 && st->step < end;
    }
    if (st->step < end) printf("interrupted at step %d: saving and exiting\n", st->step);
    if (mpi_ranks > 1 && run.timed_steps > 0)
        printf("data parallel: summing the gradients over %d ranks took %.1f ms a step (of %.1f "
               "ms)\n", mpi_ranks, ranks_seconds / run.timed_steps * 1e3,
               run.seconds / run.timed_steps * 1e3);
    finish_run(&run, argv[0]);
    fclose(run.log);
    free(run.inputs);
    free(run.targets);
    free(run.log_path);
    free(run.ckpt_path);
    free(run.train.tokens);
    free(run.val.tokens);
    loader_free(&run.loader);
    model_free(&run.model);
    tokenizer_free(&tokenizer);
    free(flags.log_line);
    free(flags.run_dir);
    return 0;
}
#endif /* TESTING */

/* ------------------------------------------------------------------------------------ */
/* 12. making it fast                                                                    */
/* ------------------------------------------------------------------------------------ */

/* Everything here computes what the code above says, only faster; a reader who wants the
 * model can stop before this section. The tests compare each fast kernel with its plain one.
 *   12.1 exp and sums in lanes    exp in vectorisable arithmetic; row sums in a fixed order
 *   12.2 the matrix product       gemm: blocked for the caches and the vector registers
 *   12.3 scratch memory           buffers kept between calls
 *   12.4 decoding                 the weights in panels; a token in one parallel region */

/* ---- 12.1 exp --------------------------------------------------------------------------
 * libm's expf is a call the compiler cannot vectorise; exp_approx is branch-free arithmetic
 * it can: exp(x) = 2^k exp(r) with k = round(x / ln 2) and r = x - k ln 2 (ln 2 in two parts,
 * so r is exact), exp(r) by Cephes' degree-7 polynomial, and 2^k written into the exponent
 * bits. Relative error below 1.5 ulp over [-87, 88]; inputs are clamped there, where exp
 * stays a normal float, and a NaN stays a NaN (a diverged model must be seen to diverge). */
static inline float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f; /* round: 12582912 = 1.5*2^23 */
    float r = x - k * 0.693359375f + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float k_int = k == k ? k : 0.0f; /* NaN in gives NaN out (through p), but no NaN to int */
    int32_t bits = ((int32_t)k_int + 127) << 23; /* 2^k as a float */
    float two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    return p * two_k;
}

/* Sums along a row. A float sum in one running variable cannot be vectorised without
 * changing its result (float addition is not associative), so compilers leave it scalar.
 * These keep SUM_LANES running sums, lane l taking elements l, l+SUM_LANES, ..., and add
 * the lanes in a fixed order at the end: vector code, and the same result on every run. */
static inline float lanes_total(const float lane[SUM_LANES]) {
    float s = 0.0f;
    for (int l = 0; l < SUM_LANES; l++) s += lane[l];
    return s;
}
/* sum_i x[i] * y[i] * z[i]; pass z = NULL for the plain dot product */
static inline float dot3(const float *x, const float *y, const float *z, int n) {
    float lane[SUM_LANES] = {0};
    int i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int l = 0; l < SUM_LANES; l++) lane[l] += x[i + l] * y[i + l] * (z ? z[i + l] : 1.0f);
    float s = lanes_total(lane);
    for (; i < n; i++) s += x[i] * y[i] * (z ? z[i] : 1.0f);
    return s;
}
static inline float max_of(const float *x, int n) {
    float lane[SUM_LANES];
    for (int l = 0; l < SUM_LANES; l++) lane[l] = -FLT_MAX;
    int i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int l = 0; l < SUM_LANES; l++) lane[l] = x[i + l] > lane[l] ? x[i + l] : lane[l];
    float m = -FLT_MAX;
    for (int l = 0; l < SUM_LANES; l++) m = lane[l] > m ? lane[l] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}
/* sum_i exp(x[i] - shift) */
static inline float sum_exp(const float *x, float shift, int n) {
    float lane[SUM_LANES] = {0};
    int i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int l = 0; l < SUM_LANES; l++) lane[l] += exp_approx(x[i + l] - shift);
    float s = lanes_total(lane);
    for (; i < n; i++) s += exp_approx(x[i] - shift);
    return s;
}

/* ---- 12.2 the matrix product ---------------------------------------------------------
 * out (M, N) (+)= A (M, K) B (K, N), A and B read through a row and a column stride, blocked
 * the classic way (GotoBLAS): K in blocks of KC; per block B's rows are copied ("packed")
 * into panels of NR columns, kc x NR contiguous, and A's rows into strips of MR rows; a
 * register tile of MR x NR outputs (MR x 2 vectors of VEC_LEN floats) runs over k with two
 * vector loads of B, MR broadcasts of A and 2*MR vector FMAs per k. Threads take chunks of
 * rows as they become free; every output sums over k in the same order whichever thread
 * computes it, so the result does not depend on the thread count. */
#if defined(__AVX512F__)
#define VEC_LEN 16
#define GEMM_MR 8
#elif defined(__AVX__)
#define VEC_LEN 8
#define GEMM_MR 6
#else
#define VEC_LEN 4
#define GEMM_MR 6
#endif
#define GEMM_NR (2 * VEC_LEN)
#define GEMM_KC 256
#define GEMM_MC (8 * GEMM_MR)

/* acc[MR][NR] = sum over kc of Ap[k][r] * Bp[k][0..NR), then stored or added into the
 * mr x nr corner of out: two contiguous streams in, registers only in the loop. The tile is
 * written with GNU C vector extensions, which map vfloat onto the target's vector registers;
 * plain C loops, which compilers vectorise far less reliably, are the fallback
 * (-DSWAT_PLAIN_C; the tests run both). */
#if defined(__GNUC__) && !defined(SWAT_PLAIN_C)
typedef float vfloat __attribute__((vector_size(VEC_LEN * sizeof(float))));
static inline void gemm_tile(int kc, const float *Ap, const float *Bp, float *out, long ld_out,
                             int mr, int nr, int add) {
    vfloat acc[GEMM_MR][2];
    for (int r = 0; r < GEMM_MR; r++) acc[r][0] = acc[r][1] = (vfloat){0};
    for (int k = 0; k < kc; k++) {
        vfloat b0, b1; /* memcpy: an unaligned vector load */
        memcpy(&b0, Bp + (long)k * GEMM_NR, sizeof b0);
        memcpy(&b1, Bp + (long)k * GEMM_NR + VEC_LEN, sizeof b1);
        for (int r = 0; r < GEMM_MR; r++) {
            float a = Ap[(long)k * GEMM_MR + r];
            acc[r][0] += a * b0;
            acc[r][1] += a * b1;
        }
    }
    for (int r = 0; r < mr; r++) {
        float *c = out + r * ld_out;
        if (nr == GEMM_NR) { /* a full row of the tile: vector loads and stores */
            if (add) {
                vfloat c0, c1;
                memcpy(&c0, c, sizeof c0);
                memcpy(&c1, c + VEC_LEN, sizeof c1);
                acc[r][0] += c0;
                acc[r][1] += c1;
            }
            memcpy(c, &acc[r][0], sizeof acc[r][0]);
            memcpy(c + VEC_LEN, &acc[r][1], sizeof acc[r][1]);
        } else {
            float row[GEMM_NR];
            memcpy(row, acc[r], sizeof row);
            for (int j = 0; j < nr; j++) c[j] = add ? c[j] + row[j] : row[j];
        }
    }
}
#else
static inline void gemm_tile(int kc, const float *Ap, const float *Bp, float *out, long ld_out,
                             int mr, int nr, int add) {
    float acc[GEMM_MR][GEMM_NR] = {{0}};
    for (int k = 0; k < kc; k++) {
        const float *a = Ap + (long)k * GEMM_MR;
        const float *b = Bp + (long)k * GEMM_NR;
        for (int r = 0; r < GEMM_MR; r++)
            for (int j = 0; j < GEMM_NR; j++) acc[r][j] += a[r] * b[j];
    }
    for (int r = 0; r < mr; r++) {
        float *c = out + r * ld_out;
        for (int j = 0; j < nr; j++) c[j] = add ? c[j] + acc[r][j] : acc[r][j];
    }
}
#endif

/* Packing, one copy for both operands: dst[k*width + j] = src[k*ks + j*js] for k < kc and
 * j < valid, 0 for valid <= j < width (B's panels: j a column; A's strips: j a row). A whole
 * block with one unit stride has no bounds test and a known stride, so it vectorises. */
static inline void pack_block(float *dst, const float *src, long ks, long js, int width,
                              int valid, int kc) {
    if (valid == width && js == 1)
        for (int k = 0; k < kc; k++)
            for (int j = 0; j < width; j++) dst[k * width + j] = src[k * ks + j];
    else if (valid == width && ks == 1)
        for (int k = 0; k < kc; k++)
            for (int j = 0; j < width; j++) dst[k * width + j] = src[k + j * js];
    else
        for (int k = 0; k < kc; k++)
            for (int j = 0; j < width; j++)
                dst[k * width + j] = j < valid ? src[k * ks + j * js] : 0.0f;
}

/* Panels [p0, p1) of B's rows k0 .. k0+kc-1: panel p at Bp + p*kc*NR, zero past column N. */
static void gemm_pack_b(float *Bp, const float *B, long b_row, long b_col, int N, int k0, int kc,
                        int p0, int p1) {
    for (int p = p0; p < p1; p++) {
        int valid = N - p * GEMM_NR < GEMM_NR ? N - p * GEMM_NR : GEMM_NR;
        const float *src = B + (long)k0 * b_row + (long)p * GEMM_NR * b_col;
        pack_block(Bp + (long)p * kc * GEMM_NR, src, b_row, b_col, GEMM_NR, valid, kc);
    }
}

/* Rows [m_start, m_end) of out (+)= A(those rows, k0 .. k0+kc-1) times the packed k-block
 * of B. A's rows are packed into Ap (room for the rows x kc, rounded up to MR rows) in
 * strips of MR rows, Ap[strip][k][r], zero past the last row. */
static void gemm_rows(float *out, long ld_out, const float *A, long a_row, long a_col,
                      const float *Bp, float *Ap, int m_start, int m_end, int N, int k0, int kc,
                      int add) {
    for (int m0 = m_start; m0 < m_end; m0 += GEMM_MR) {
        int valid = m_end - m0 < GEMM_MR ? m_end - m0 : GEMM_MR;
        const float *src = A + (long)m0 * a_row + (long)k0 * a_col;
        pack_block(Ap + (long)(m0 - m_start) * kc, src, a_col, a_row, GEMM_MR, valid, kc);
    }
    for (int n = 0; n < N; n += GEMM_NR) {
        int nr = N - n < GEMM_NR ? N - n : GEMM_NR;
        for (int m0 = m_start; m0 < m_end; m0 += GEMM_MR) {
            int mr = m_end - m0 < GEMM_MR ? m_end - m0 : GEMM_MR;
            gemm_tile(kc, Ap + (long)(m0 - m_start) * kc, Bp + (long)(n / GEMM_NR) * kc * GEMM_NR,
                      out + (long)m0 * ld_out + n, ld_out, mr, nr, add || k0 > 0);
        }
    }
}

/* Floats of scratch that gemm_serial needs for products with at most N columns. */
static size_t gemm_scratch_floats(int N) {
    return (size_t)GEMM_KC * ((N + GEMM_NR - 1) / GEMM_NR) * GEMM_NR + (size_t)GEMM_MC * GEMM_KC;
}

/* The product by the calling thread alone, with gemm_scratch_floats(N) floats of scratch. */
static void gemm_serial(float *out, long ld_out, const float *A, long a_row, long a_col,
                        const float *B, long b_row, long b_col, int M, int N, int K, int add,
                        float *scratch) {
    int panels = (N + GEMM_NR - 1) / GEMM_NR;
    float *Bp = scratch;
    float *Ap = scratch + (size_t)GEMM_KC * panels * GEMM_NR;
    if (K <= 0 && !add)
        for (int m = 0; m < M; m++) memset(out + m * ld_out, 0, N * sizeof(float));
    for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
        int kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
        gemm_pack_b(Bp, B, b_row, b_col, N, k0, kc, 0, panels);
        for (int m0 = 0; m0 < M; m0 += GEMM_MC) {
            int m1 = m0 + GEMM_MC < M ? m0 + GEMM_MC : M;
            gemm_rows(out, ld_out, A, a_row, a_col, Bp, Ap, m0, m1, N, k0, kc, add);
        }
    }
}

/* Weight gradients dW += dy^T x sum over all B*T positions: K is far larger than M and N,
 * and cutting rows among threads would give each little work per shared k-block. So K is cut
 * instead, into a number of slices that depends on K alone; threads compute the slices'
 * partial products independently, and they are added in slice order. */
#define GEMM_KSLICE 512
#define GEMM_MAX_SLICES 8
static int gemm_slices(int M, int N, int K) {
    int slices = K / GEMM_KSLICE < GEMM_MAX_SLICES ? K / GEMM_KSLICE : GEMM_MAX_SLICES;
    return slices >= 2 && K >= 4L * M && K >= 4L * N ? slices : 1;
}

static void gemm_sliced(float *out, long ld_out, const float *A, long a_row, long a_col,
                        const float *B, long b_row, long b_col, int M, int N, int K, int add,
                        int slices) {
    size_t part = (size_t)M * N;
    size_t per_thread = gemm_scratch_floats(N);
    float *partial = scratch_floats(SCRATCH_GEMM_SLICES,
                                    slices * part + num_threads() * per_thread);
    #pragma omp parallel
    {
        float *scratch = partial + slices * part + thread_id() * per_thread;
        #pragma omp for schedule(dynamic, 1)
        for (int s = 0; s < slices; s++) {
            int k0 = (int)((long)K * s / slices);
            int k1 = (int)((long)K * (s + 1) / slices);
            gemm_serial(partial + s * part, N, A + k0 * a_col, a_row, a_col, B + k0 * b_row, b_row,
                        b_col, M, N, k1 - k0, 0, scratch);
        }
        #pragma omp for schedule(static)
        for (int m = 0; m < M; m++) {
            float *c = out + m * ld_out;
            if (!add)
                for (int n = 0; n < N; n++) c[n] = 0.0f;
            for (int s = 0; s < slices; s++)
                for (int n = 0; n < N; n++) c[n] += partial[s * part + (size_t)m * N + n];
        }
    }
}

/* The product by all threads. */
static void gemm(float *out, long ld_out, const float *A, long a_row, long a_col, const float *B,
                 long b_row, long b_col, int M, int N, int K, int add) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* an empty sum */
        if (!add)
            for (int m = 0; m < M; m++) memset(out + m * ld_out, 0, N * sizeof(float));
        return;
    }
    int slices = gemm_slices(M, N, K);
    if (slices > 1) {
        gemm_sliced(out, ld_out, A, a_row, a_col, B, b_row, b_col, M, N, K, add, slices);
        return;
    }
    int panels = (N + GEMM_NR - 1) / GEMM_NR;
    /* chunks of mc rows, a multiple of MR: GEMM_MC, or smaller when M is small, so that
     * every thread gets several chunks and a slow thread can be made up for */
    int strips = (M + GEMM_MR - 1) / GEMM_MR;
    int per_chunk = GEMM_MC / GEMM_MR;
    while (per_chunk > 1 && strips < 4 * num_threads() * per_chunk) per_chunk /= 2;
    int mc = per_chunk * GEMM_MR;
    int chunks = (M + mc - 1) / mc;
    size_t b_floats = (size_t)GEMM_KC * panels * GEMM_NR;
    /* one packed k-block of B, shared, then a block of A per thread */
    float *Bp = scratch_floats(SCRATCH_GEMM, b_floats + (size_t)num_threads() * GEMM_MC * GEMM_KC);
    #pragma omp parallel
    {
        float *Ap = Bp + b_floats + (size_t)thread_id() * GEMM_MC * GEMM_KC;
        for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
            int kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
            #pragma omp for schedule(static)
            for (int p = 0; p < panels; p++) gemm_pack_b(Bp, B, b_row, b_col, N, k0, kc, p, p + 1);
            #pragma omp for schedule(dynamic, 1)
            for (int ch = 0; ch < chunks; ch++) {
                int m1 = (ch + 1) * mc < M ? (ch + 1) * mc : M;
                gemm_rows(out, ld_out, A, a_row, a_col, Bp, Ap, ch * mc, m1, N, k0, kc, add);
            }
        }
    }
}

/* ---- 12.3 scratch memory ------------------------------------------------------------ */

/* Grow-only scratch memory kept between calls (a few hundred KB per call would otherwise cost
 * fresh zeroed pages every time). Called outside parallel regions; threads take slices. */
static float *scratch_floats(int slot, size_t floats) {
    static float *buf[SCRATCH_SLOTS];
    static size_t capacity[SCRATCH_SLOTS];
    if (floats > capacity[slot]) {
        free(buf[slot]);
        buf[slot] = xcalloc(floats, sizeof(float), "scratch memory");
        capacity[slot] = floats;
    }
    return buf[slot];
}

/* ---- 12.4 decoding ----------------------------------------------------------------------
 * A token's products y = W x read every weight once, so they run at the speed the caches
 * deliver weights; n sequences decoded together (--samples) read them once for all n. The
 * weights are copied once into panels of GEMM_NR rows stored k-major (as gemm packs B): for each
 * k one vector load gives the weights of NR outputs, times the broadcast x[k] of each sequence.
 * Every output is one chain of fused multiply-adds over k in order: the same numbers for one
 * sequence or many and for any thread count. A token is one parallel region: threads take
 * heads, then panels of each product, one barrier after each of the four steps of a layer. */

#define PANEL_FLOATS(in) ((size_t)(in) * GEMM_NR)

static int panels_for(int rows) { return (rows + GEMM_NR - 1) / GEMM_NR; }

/* rows [r0, r1) of W (rows of IN floats) as panels: dst[(p*IN + k)*NR + j] = W[r0 + p*NR + j][k],
 * 0 past r1. Returns the floats written. */
static size_t pack_panels(float *dst, const float *W, int IN, int r0, int r1) {
    int np = panels_for(r1 - r0);
    for (int p = 0; p < np; p++)
        for (int k = 0; k < IN; k++)
            for (int j = 0; j < GEMM_NR; j++) {
                int r = r0 + p * GEMM_NR + j;
                dst[((size_t)p * IN + k) * GEMM_NR + j] = r < r1 ? W[(size_t)r * IN + k] : 0.0f;
            }
    return (size_t)np * PANEL_FLOATS(IN);
}

/* Where the packed copy holds each matrix (floats from its layer's start): per head h its rows
 * of Wq, Wk, Wv from panel 3 h head_panels; then Wo, Wgate, Wup, Wdown; lm_head after the last. */
typedef struct {
    int head_panels;              /* panels of a head's D rows */
    size_t wo, gate, up, down;    /* where Wo, Wgate, Wup and Wdown begin */
    size_t layer;                 /* floats of one layer */
    size_t lm_head;               /* where lm_head begins, from the start of the copy */
    size_t total;                 /* floats of the whole copy */
} PackedLayout;

static PackedLayout packed_layout(const ModelConfig *c) {
    PackedLayout p;
    p.head_panels = panels_for(c->C / c->H);
    p.wo = (size_t)3 * c->H * p.head_panels * PANEL_FLOATS(c->C);
    p.gate = p.wo + (size_t)panels_for(c->C) * PANEL_FLOATS(c->C);
    p.up = p.gate + (size_t)panels_for(c->F) * PANEL_FLOATS(c->C);
    p.down = p.up + (size_t)panels_for(c->F) * PANEL_FLOATS(c->C);
    p.layer = p.down + (size_t)panels_for(c->C) * PANEL_FLOATS(c->F);
    p.lm_head = (size_t)c->L * p.layer;
    p.total = p.lm_head + (size_t)panels_for(c->V) * PANEL_FLOATS(c->C);
    return p;
}

static float *pack_model(const Model *m) {
    const ModelConfig *c = &m->cfg;
    PackedLayout pl = packed_layout(c);
    int C = c->C, F = c->F, D = C / c->H;
    float *pk = xcalloc(pl.total, sizeof(float), "packed weights");
    for (int l = 0; l < c->L; l++) { /* one thread: a few ms, and no wait for a busy core */
        float *d = pk + (size_t)l * pl.layer;
        LayerWeights lw = layer_weights(&m->param, c, l);
        for (int h = 0; h < c->H; h++) {
            float *dh = d + (size_t)h * 3 * pl.head_panels * PANEL_FLOATS(C);
            dh += pack_panels(dh, lw.wq, C, h * D, (h + 1) * D);
            dh += pack_panels(dh, lw.wk, C, h * D, (h + 1) * D);
            pack_panels(dh, lw.wv, C, h * D, (h + 1) * D);
        }
        pack_panels(d + pl.wo, lw.wo, C, 0, C);
        pack_panels(d + pl.gate, lw.w_gate, C, 0, F);
        pack_panels(d + pl.up, lw.w_up, C, 0, F);
        pack_panels(d + pl.down, lw.w_down, F, 0, C);
    }
    pack_panels(pk + pl.lm_head, m->param.lm_head, C, 0, c->V);
    return pk;
}

/* y[n][c] (+)= sum_k x[n][k] * W[c][k] for N <= 8 sequences and the NP*NR rows of NP panels at
 * Bp (cols of them real): N*2*NP vector accumulators, NP panels at once so that even one
 * sequence has several independent chains. With N and NP constants after inlining, the
 * accumulators live in registers. add: y += the sum (one rounding: y + sum). */
#if defined(__GNUC__) && !defined(SWAT_PLAIN_C)
static inline __attribute__((always_inline)) void
panel_group(float *y, long ldy, const float *x, long ldx, int N, int NP, const float *Bp, int IN,
            int cols, int add) {
    vfloat acc[8][8];
    for (int n = 0; n < N; n++)
        for (int v = 0; v < 2 * NP; v++) acc[n][v] = (vfloat){0};
    for (int k = 0; k < IN; k++) {
        float a[8];
        for (int n = 0; n < N; n++) a[n] = x[(long)n * ldx + k];
        for (int v = 0; v < 2 * NP; v++) {
            vfloat b; /* vector v & 1 of panel v >> 1 */
            memcpy(&b, Bp + (v >> 1) * PANEL_FLOATS(IN) + (size_t)k * GEMM_NR + (v & 1) * VEC_LEN,
                   sizeof b);
            for (int n = 0; n < N; n++) acc[n][v] += a[n] * b;
        }
    }
    for (int n = 0; n < N; n++)
        for (int v = 0; v < 2 * NP; v++) {
            float *yv = y + (long)n * ldy + v * VEC_LEN;
            int c0 = v * VEC_LEN;
            if (c0 + VEC_LEN <= cols) {
                vfloat old;
                memcpy(&old, yv, sizeof old);
                if (add) acc[n][v] = old + acc[n][v];
                memcpy(yv, &acc[n][v], sizeof acc[n][v]);
            } else if (c0 < cols) {
                float out[VEC_LEN];
                memcpy(out, &acc[n][v], sizeof out);
                for (int j = 0; j < cols - c0; j++) yv[j] = add ? yv[j] + out[j] : out[j];
            }
        }
}
#else
static inline void panel_group(float *y, long ldy, const float *x, long ldx, int N, int NP,
                               const float *Bp, int IN, int cols, int add) {
    float acc[8][4 * GEMM_NR];
    for (int n = 0; n < N; n++)
        for (int j = 0; j < NP * GEMM_NR; j++) acc[n][j] = 0.0f;
    for (int k = 0; k < IN; k++)
        for (int n = 0; n < N; n++) {
            float a = x[(long)n * ldx + k];
            for (int q = 0; q < NP; q++) {
                const float *b = Bp + (size_t)q * PANEL_FLOATS(IN) + (size_t)k * GEMM_NR;
                for (int j = 0; j < GEMM_NR; j++) acc[n][q * GEMM_NR + j] += a * b[j];
            }
        }
    for (int n = 0; n < N; n++)
        for (int j = 0; j < cols && j < NP * GEMM_NR; j++)
            y[(long)n * ldy + j] = add ? y[(long)n * ldy + j] + acc[n][j] : acc[n][j];
}
#endif

/* y (N, ldy) (+)= x (N, IN) W^T for W's rows in panels p0 .. p0+np-1 (fewer at its end), W's
 * OUT rows packed at Bp. The accumulators of a group must fit the vector registers: 32 with
 * AVX-512 (up to 8 sequences x 2 vectors, or 1-2 sequences x 4 panels), 16 otherwise. */
#define PANEL_MAX_N (VEC_LEN >= 16 ? 8 : 4)
static void panel_rows(float *y, long ldy, const float *x, long ldx, int N, const float *Bp,
                       int IN, int OUT, int p0, int np, int add) {
    int p1 = p0 + np < panels_for(OUT) ? p0 + np : panels_for(OUT);
    for (int n0 = 0; n0 < N; n0 += PANEL_MAX_N) {
        int nn = N - n0 < PANEL_MAX_N ? N - n0 : PANEL_MAX_N;
        for (int p = p0; p < p1;) {
            int group = VEC_LEN >= 16 ? (nn <= 2 ? 4 : nn <= 4 ? 2 : 1)
                                      : (nn == 1 ? 4 : nn == 2 ? 2 : 1);
            while (group > p1 - p) group /= 2;
            int c = OUT - p * GEMM_NR < group * GEMM_NR ? OUT - p * GEMM_NR : group * GEMM_NR;
            float *yp = y + (long)n0 * ldy + p * GEMM_NR;
            const float *xp = x + (long)n0 * ldx;
            const float *bp = Bp + (size_t)p * PANEL_FLOATS(IN);
            switch (nn * 8 + group) { /* (sequences, panels): each its own register allocation */
#define PANEL_CASE(NN, NP) \
    case NN * 8 + NP: panel_group(yp, ldy, xp, ldx, NN, NP, bp, IN, c, add); break;
                PANEL_CASE(1, 4) PANEL_CASE(1, 2) PANEL_CASE(1, 1) PANEL_CASE(2, 4)
                PANEL_CASE(2, 2) PANEL_CASE(2, 1) PANEL_CASE(3, 2) PANEL_CASE(3, 1)
                PANEL_CASE(4, 2) PANEL_CASE(4, 1) PANEL_CASE(5, 1) PANEL_CASE(6, 1)
                PANEL_CASE(7, 1) PANEL_CASE(8, 1)
#undef PANEL_CASE
            default: die("panel_rows: no kernel for %d sequences x %d panels", nn, group);
            }
            p += group;
        }
    }
}

/* where the rows of sequence i, layer l begin in k_cache and v_cache */
static size_t cache_offset(const InferState *s, int i, int l) {
    const ModelConfig *c = &s->m->cfg;
    return ((size_t)i * c->L + l) * ((size_t)s->window + s->keep_first) * c->C;
}

/* Lanes lane0 .. lane0+lanes-1 of a key and a value into cache row `row` of sequence i, layer l;
 * a ring row's key also into k_transposed (one vector load: a lane of consecutive slots). */
static void cache_store(InferState *s, int i, int l, int row, int lane0, int lanes,
                        const float *k, const float *v) {
    const ModelConfig *c = &s->m->cfg;
    int w = s->window;
    size_t at = cache_offset(s, i, l) + (size_t)row * c->C + lane0;
    float *kt = s->k_transposed + ((size_t)i * c->L + l) * c->C * w; /* (C, w) */
    memcpy(s->k_cache + at, k, lanes * sizeof(float));
    memcpy(s->v_cache + at, v, lanes * sizeof(float));
    for (int j = 0; row < w && j < lanes; j++) kt[(size_t)(lane0 + j) * w + row] = k[j];
}

/* Attention of sequence i, head h, layer l, after its key and value entered the cache: step 5
 * of infer_step_naive with kept_scores_naive, its sums in this order: the kept first keys,
 * then the window by distance d = 0..seen-1. The dot products of all ring slots at once in
 * vector registers (from k_transposed), and softmax's exp by exp_approx.
 * a: scratch of w + keep_first floats, sbuf: w floats. */
static void infer_attention(InferState *s, CachePosition at, int l, int i, int h, float *a,
                            float *sbuf) {
    const Model *m = s->m;
    const ModelConfig *c = &m->cfg;
    int C = c->C, D = C / c->H, w = s->window, kept = at.kept, seen = at.seen;
    float scale = 1.0f / sqrtf((float)D), slope = m->slopes[h], maxs = -FLT_MAX;
    const float *qh = s->q + (long)i * C + h * D;
    const float *q_first = s->q_first + (long)i * C + h * D;
    const float *kc = s->k_cache + cache_offset(s, i, l) + h * D; /* row r at kc + r C */
    const float *vc = s->v_cache + cache_offset(s, i, l) + h * D;
    const float *kt = s->k_transposed + (((size_t)i * c->L + l) * C + h * D) * w; /* (D, w) */
    for (int j = 0; j < kept; j++) { /* a[0..kept): kept first keys j = 0..kept-1, rows w + j */
        const float *kn = kc + (size_t)(w + j) * C;
        float sc = 0.0f;
        for (int dim = 0; dim < D; dim++) sc += q_first[dim] * kn[dim];
        a[j] = sc * scale + slope * (float)(at.cache_index - j);
        if (a[j] > maxs) maxs = a[j];
    }
    int s0 = 0; /* q.k of every slot: one chain over dim per slot, as a dot product */
#if defined(__GNUC__) && !defined(SWAT_PLAIN_C)
    for (; s0 + 4 * VEC_LEN <= seen; s0 += 4 * VEC_LEN) { /* 4 vectors of slots: 4 chains */
        vfloat acc[4] = {{0}, {0}, {0}, {0}};
        for (int dim = 0; dim < D; dim++) {
            const float *kr = kt + (long)dim * w + s0;
            for (int v = 0; v < 4; v++) {
                vfloat kv;
                memcpy(&kv, kr + v * VEC_LEN, sizeof kv);
                acc[v] += qh[dim] * kv;
            }
        }
        memcpy(sbuf + s0, acc, sizeof acc);
    }
#endif
    for (; s0 < seen; s0 += 16) {
        float acc[16] = {0};
        int len = seen - s0 < 16 ? seen - s0 : 16;
        for (int dim = 0; dim < D; dim++)
            for (int j = 0; j < len; j++) acc[j] += qh[dim] * kt[(long)dim * w + s0 + j];
        for (int j = 0; j < len; j++) sbuf[s0 + j] = acc[j];
    }
    for (int d = 0, sl = at.slot; d < seen; d++, sl = sl ? sl - 1 : w - 1) { /* slot (p-d) % w */
        a[kept + d] = sbuf[sl] * scale + slope * d;
        if (a[kept + d] > maxs) maxs = a[kept + d];
    }
    int keys = kept + seen;
    if (c->attn == ATTN_SIGMOID) {
        for (int j = 0; j < keys; j++) a[j] = sigmoid(a[j]);
    } else {
        float sum = 0.0f;
        for (int j = 0; j < keys; j++) {
            a[j] = exp_approx(a[j] - maxs);
            sum += a[j];
        }
        for (int j = 0; j < keys; j++) a[j] /= sum;
    }
    float *oh = s->o + (long)i * C + h * D;
    int dim0 = 0; /* o = sum of a v: the kept keys, then the window by distance; a chain a lane */
#if defined(__GNUC__) && !defined(SWAT_PLAIN_C)
    for (; dim0 + VEC_LEN <= D; dim0 += 4 * VEC_LEN) { /* up to 4 vectors of lanes: 4 chains */
        int nv = (D - dim0) / VEC_LEN < 4 ? (D - dim0) / VEC_LEN : 4;
        vfloat acc[4] = {{0}, {0}, {0}, {0}};
        for (int j = 0; j < kept; j++)
            for (int v = 0; v < nv; v++) {
                vfloat x;
                memcpy(&x, vc + (size_t)(w + j) * C + dim0 + v * VEC_LEN, sizeof x);
                acc[v] += a[j] * x;
            }
#define ATTN_OUT(NV) \
    for (int d = 0, sl = at.slot; d < seen; d++, sl = sl ? sl - 1 : w - 1) \
        for (int v = 0; v < (NV); v++) { \
            vfloat x; \
            memcpy(&x, vc + (long)sl * C + dim0 + v * VEC_LEN, sizeof x); \
            acc[v] += a[kept + d] * x; \
        }
        switch (nv) { /* nv a constant: the accumulators stay in registers */
        case 4: ATTN_OUT(4) break;
        case 3: ATTN_OUT(3) break;
        case 2: ATTN_OUT(2) break;
        default: ATTN_OUT(1)
        }
#undef ATTN_OUT
        memcpy(oh + dim0, acc, nv * sizeof(vfloat));
        if (nv < 4) {
            dim0 += nv * VEC_LEN;
            break;
        }
    }
#endif
    for (; dim0 < D; dim0 += 16) {
        int len = D - dim0 < 16 ? D - dim0 : 16;
        float acc[16] = {0};
        for (int j = 0; j < kept; j++)
            for (int dim = 0; dim < len; dim++)
                acc[dim] += a[j] * vc[(size_t)(w + j) * C + dim0 + dim];
        for (int d = 0, sl = at.slot; d < seen; d++, sl = sl ? sl - 1 : w - 1)
            for (int dim = 0; dim < len; dim++)
                acc[dim] += a[kept + d] * vc[(long)sl * C + dim0 + dim];
        for (int dim = 0; dim < len; dim++) oh[dim0 + dim] = acc[dim];
    }
}

/* One token for each of the s->n sequences (tokens[i] for sequence i), all at position
 * p = s->pos: the sums of infer_step_naive in one parallel region, one barrier a step. */
static void infer_step_all(InferState *s, const int *tokens) {
    const Model *m = s->m;
    const ModelConfig *c = &m->cfg;
    int C = c->C, F = c->F, D = C / c->H, V = c->V, n = s->n;
    CachePosition at = cache_position(s);
    PackedLayout pl = packed_layout(c);
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            die("token %d is outside the vocabulary (V=%d)", tokens[i], V);
        memcpy(s->x + (long)i * C, m->param.wte + (long)tokens[i] * C, C * sizeof(float));
    }
    if (c->rope) {
        rope_tables(s->rope_cos, s->rope_sin, 1, D, c->rope_theta, at.p);
        if (at.kept > 0)
            rope_tables(s->first_cos, s->first_sin, 1, D, c->rope_theta, at.cache_index);
    }
    int ldg = 4 * GEMM_NR; /* a work item's h Wgate^T and h Wup^T: (n, ldg) at most */
    size_t per_thread = (size_t)n * C + 2 * (size_t)n * ldg + 2 * (size_t)s->window + s->keep_first;
    per_thread = (per_thread + 15) / 16 * 16; /* the threads' parts 64 bytes apart */
    float *scratch = scratch_floats(SCRATCH_DECODE, per_thread * num_threads());
    int hp = pl.head_panels;
    size_t head_rows = (size_t)hp * PANEL_FLOATS(C); /* floats of a head's packed q (k, v) rows */
    int per_item = n <= 2 ? 4 : 2; /* panels per work item of a product: p0 .. p0+per_item-1 */
    int team = num_threads();
    if (s->use_threads > 0 && s->use_threads < team) team = s->use_threads;
    (void)team; /* without OpenMP */
    #pragma omp parallel if (team > 1) num_threads(team)
    {
        float *hn = scratch + per_thread * thread_id(); /* (n, C) RMSNorm outputs */
        float *gate = hn + (size_t)n * C;               /* (n, ldg) a work item's h Wgate^T */
        float *up = gate + (size_t)n * ldg;             /* (n, ldg) and h Wup^T */
        float *a = up + (size_t)n * ldg;                /* (w + keep_first) scores */
        float *sbuf = a + s->window + s->keep_first;    /* (w) dot products by slot */
        for (int l = 0; l < c->L; l++) {
            const float *pk = s->packed + (size_t)l * pl.layer;
            LayerWeights lw = layer_weights(&m->param, c, l);
            for (int i = 0; i < n; i++)
                rmsnorm_row(hn + (long)i * C, s->x + (long)i * C, lw.attn_norm, C);
            #pragma omp for schedule(dynamic, 1)
            for (int h = 0; h < c->H; h++) { /* q, k, v of head h, RoPE, cache, attention */
                const float *ph = pk + (size_t)h * 3 * head_rows;
                panel_rows(s->q + h * D, C, hn, C, n, ph, C, D, 0, hp, 0);
                panel_rows(s->k_new + h * D, C, hn, C, n, ph + head_rows, C, D, 0, hp, 0);
                panel_rows(s->v_new + h * D, C, hn, C, n, ph + 2 * head_rows, C, D, 0, hp, 0);
                for (int i = 0; i < n; i++) {
                    float *qh = s->q + (long)i * C + h * D;
                    float *kh = s->k_new + (long)i * C + h * D;
                    float *q_first = s->q_first + (long)i * C + h * D;
                    if (at.kept > 0) memcpy(q_first, qh, D * sizeof(float));
                    if (c->rope) {
                        rope_head(qh, s->rope_cos, s->rope_sin, D, 1.0f);
                        rope_head(kh, s->rope_cos, s->rope_sin, D, 1.0f);
                        if (at.kept > 0) rope_head(q_first, s->first_cos, s->first_sin, D, 1.0f);
                    }
                    const float *vh = s->v_new + (long)i * C + h * D;
                    cache_store(s, i, l, at.slot, h * D, D, kh, vh);
                    if (at.p < s->keep_first) /* a first position: kept in row w + p */
                        cache_store(s, i, l, s->window + (int)at.p, h * D, D, kh, vh);
                    infer_attention(s, at, l, i, h, a, sbuf);
                }
            }
            #pragma omp for schedule(dynamic, 1)
            for (int p0 = 0; p0 < panels_for(C); p0 += per_item) /* x += o Wo^T */
                panel_rows(s->x, C, s->o, C, n, pk + pl.wo, C, C, p0, per_item, 1);
            for (int i = 0; i < n; i++)
                rmsnorm_row(hn + (long)i * C, s->x + (long)i * C, lw.mlp_norm, C);
            #pragma omp for schedule(dynamic, 1)
            for (int p0 = 0; p0 < panels_for(F); p0 += per_item) { /* silu(h Wgate^T) * h Wup^T */
                int rest = F - p0 * GEMM_NR; /* rows from panel p0 on */
                int cols = rest < per_item * GEMM_NR ? rest : per_item * GEMM_NR;
                size_t from = p0 * PANEL_FLOATS(C);
                panel_rows(gate, ldg, hn, C, n, pk + pl.gate + from, C, rest, 0, per_item, 0);
                panel_rows(up, ldg, hn, C, n, pk + pl.up + from, C, rest, 0, per_item, 0);
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < cols; j++) {
                        float g = gate[i * ldg + j];
                        s->act[(long)i * F + p0 * GEMM_NR + j] = g * sigmoid(g) * up[i * ldg + j];
                    }
            }
            #pragma omp for schedule(dynamic, 1)
            for (int p0 = 0; p0 < panels_for(C); p0 += per_item) /* x += act Wdown^T */
                panel_rows(s->x, C, s->act, F, n, pk + pl.down, F, C, p0, per_item, 1);
        }
        for (int i = 0; i < n; i++)
            rmsnorm_row(hn + (long)i * C, s->x + (long)i * C, m->param.final_norm, C);
        #pragma omp for schedule(dynamic, 1)
        for (int p0 = 0; p0 < panels_for(V); p0 += per_item)
            panel_rows(s->logits, V, hn, C, n, s->packed + pl.lm_head, C, V, p0, per_item, 0);
    }
    s->pos++;
}

/* A token is a parallel region with a barrier every few microseconds: two threads win on an
 * idle machine and lose when one waits for a core another program holds. So the choice is
 * measured while decoding: DECODE_PROBE tokens on one thread, then as many on all threads,
 * which must take at most 90% of that time; then every DECODE_PROBE tokens on all threads at
 * most the one-thread time, or one thread until the next probe, a period later (DECODE_PERIOD
 * tokens, doubled up to 16 times after each loss). Below decode_parallel_min multiply-adds a
 * token decoding stays on one thread. Every choice gives the same numbers (dev/PERFORMANCE.md). */
#define DECODE_PERIOD 1024
#define DECODE_PROBE 16
static long decode_parallel_min = 1L << 23;
static void decode_threads_init(InferState *s) {
    DecodeThreads *d = &s->decode;
    memset(d, 0, sizeof(*d));
    d->threads_all = num_threads();
    if ((long)s->n * macs_per_token(&s->m->cfg) < decode_parallel_min) d->threads_all = 1;
    d->period = DECODE_PERIOD;
}

/* before each token of the fast decoder: sets s->use_threads */
static void decode_threads_before(InferState *s) {
    DecodeThreads *d = &s->decode;
    if (d->threads_all <= 1) return; /* s->use_threads stays 1 */
    double t = now_seconds();
    if (d->token == 0) { /* the one-thread probe */
        d->window_start = t;
        s->use_threads = 1;
    } else if (d->token == DECODE_PROBE) { /* then all threads */
        d->one_thread_time = t - d->window_start;
        d->window_start = t;
        s->use_threads = d->threads_all;
    } else if (s->use_threads == d->threads_all) { /* the last DECODE_PROBE tokens against: */
        double limit = d->token <= 2 * DECODE_PROBE ? 0.9 * d->one_thread_time : d->one_thread_time;
        if (t - d->window_start > limit) { /* lost: one thread until the next probe */
            s->use_threads = 1;
            if (d->period < 16 * DECODE_PERIOD) d->period *= 2;
        } else if (d->token % DECODE_PROBE == 0) { /* won: time the next DECODE_PROBE tokens */
            d->window_start = t;
            if (d->token == 2 * DECODE_PROBE) d->period = DECODE_PERIOD;
        }
    }
    if (++d->token >= d->period) d->token = 0;
}
