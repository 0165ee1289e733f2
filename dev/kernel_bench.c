/* kernel_bench: where a training step of the make-bench default model spends its time,
 * kernel by kernel, with each matrix product's GFLOP/s. It includes train_swat.c (without
 * its main) so it times exactly the trainer's code.
 *
 *   make dev/kernel_bench && OMP_NUM_THREADS=2 dev/kernel_bench [B T W]
 *
 * Every kernel runs REPS times after one warm-up call; the median is printed. The "step"
 * row times model_forward + model_backward as a whole; the other rows are the parts. */
#define TESTING
#include "../train_swat.c"

#define REPS 7

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef void (*KernelFn)(void *ctx);
static double time_ms(KernelFn fn, void *ctx) {
    double t[REPS];
    fn(ctx);
    for (int r = 0; r < REPS; r++) {
        double t0 = now_seconds();
        fn(ctx);
        t[r] = (now_seconds() - t0) * 1e3;
    }
    qsort(t, REPS, sizeof(double), cmp_double);
    return t[REPS / 2];
}

typedef struct { float *Cm, *A, *Bm; int M, N, K, mode; } GemmCase;
static void run_gemm(void *p) {
    GemmCase *g = p; /* mode 0: y = x W^T, 1: dx += dy W, 2: dW += dy^T x (the three of matmul) */
    if (g->mode == 0) matmul_forward(g->Cm, g->A, g->Bm, g->M, g->K, g->N);
    else if (g->mode == 1) matmul_backward(g->Cm, NULL, g->A, NULL, g->Bm, g->M, g->N, g->K, 1);
    else matmul_backward(NULL, g->Cm, g->A, g->Bm, NULL, g->K, g->N, g->M, 1);
}

typedef struct { Model *m; int *in, *tg, B, T, W; } StepCase;
static void run_step(void *p) {
    StepCase *s = p;
    model_zero_grad(s->m);
    model_forward(s->m, s->in, s->tg, s->B, s->T, s->W);
    model_backward(s->m);
}
static void run_forward(void *p) {
    StepCase *s = p;
    model_forward(s->m, s->in, s->tg, s->B, s->T, s->W);
}

typedef struct { Model *m; int l, backward; } AttnCase;
static void run_attention(void *p) {
    AttnCase *c = p;
    Model *m = c->m;
    Activations *a = &m->a;
    int B = a->B, T = a->T, C = m->cfg.C, H = m->cfg.H;
    const LayerActs *s = &a->layer[c->l];
    if (!c->backward)
        attention_forward_ctx(s->o, s->att, s->q, s->k, s->v, m->slopes, B, T, 0, C, H,
                              a->window, m->cfg.attn);
    else
        attention_backward(a->dq, a->dk, a->dv, a->dh, s->att, s->q, s->k, s->v, B, T, C, H,
                           a->window, m->cfg.attn);
}

/* the elementwise layers, on the model's own activation buffers */
typedef struct { Model *m; int which; } EltCase;
enum { E_RMS_F, E_RMS_B, E_SWIGLU_F, E_SWIGLU_B, E_ROPE, E_ZERO_NF, E_ZERO_NC, E_ADD_NC, E_CE_F, E_CE_B, E_EMB_F, E_EMB_B, E_COUNT };
static const char *elt_names[E_COUNT] = {"rmsnorm forward", "rmsnorm backward", "swiglu forward", "swiglu backward",
                                         "rope (q or k, fwd or bwd)", "zero (N,F)", "zero (N,C)", "residual add (N,C)",
                                         "cross-entropy forward", "cross-entropy backward", "embedding forward",
                                         "embedding backward"};
static void run_elt(void *p) {
    EltCase *e = p;
    Model *m = e->m;
    Activations *a = &m->a;
    int N = a->B * a->T, C = m->cfg.C, F = m->cfg.F, V = m->cfg.V;
    const LayerActs *s = &a->layer[0];
    switch (e->which) {
    case E_RMS_F: rmsnorm_forward(s->h, s->rstd, s->x, m->param.attn_norm, N, C); break;
    case E_RMS_B: rmsnorm_backward(a->dx, m->grad.attn_norm, a->dh, s->x, m->param.attn_norm, s->rstd, N, C); break;
    case E_SWIGLU_F: swiglu_forward(s->act, s->gate, s->up, (long)N * F); break;
    case E_SWIGLU_B: swiglu_backward(a->dgate, a->dup, a->dact, s->gate, s->up, (long)N * F, 1); break;
    case E_ROPE: rope_forward(a->dq, a->rope_cos, a->rope_sin, a->B, a->T, C, m->cfg.H); break;
    case E_ZERO_NF: zero_floats(a->dact, (long)N * F); break;
    case E_ZERO_NC: zero_floats(a->dq, (long)N * C); break;
    case E_ADD_NC: add_floats(a->dk, a->dv, (long)N * C); break;
    case E_CE_F: crossentropy_forward(a->losses, a->logits, a->targets, N, V); break;
    case E_CE_B: crossentropy_backward(a->dlogits, a->logits, a->targets, 1.0f / N, N, V, 0); break;
    case E_EMB_F: embedding_forward(a->dx, a->inputs, m->param.wte, N, C); break;
    case E_EMB_B: embedding_backward(m->grad.wte, a->dx, a->inputs, N, C); break;
    }
}

int main(int argc, char **argv) {
    int B = argc > 1 ? atoi(argv[1]) : 16, T = argc > 2 ? atoi(argv[2]) : 256, W = argc > 3 ? atoi(argv[3]) : 64;
    ModelConfig cfg = {.V = 256, .L = 4, .H = 8, .C = 256, .F = 704, .window = W, .attn = ATTN_SIGMOID,
                       .alibi_neg = 4, .alibi_pos = 4, .rope = 1, .rope_theta = 10000, .bos = -1, .version = 2};
    Model m;
    model_create(&m, &cfg);
    param_init(&cfg, m.params, 1);
    int N = B * T, C = cfg.C, F = cfg.F, V = cfg.V;
    int *in = xcalloc(N, sizeof(int), "tokens"), *tg = xcalloc(N, sizeof(int), "tokens");
    uint64_t rng = 7;
    for (int i = 0; i < N; i++) { in[i] = (int)(rng_next(&rng) % V); tg[i] = (int)(rng_next(&rng) % V); }
    printf("kernel_bench: B=%d T=%d w=%d, model L=4 C=256 H=8 F=704 V=256, %d threads\n", B, T, W, num_threads());

    StepCase sc = {&m, in, tg, B, T, W};
    double step = time_ms(run_step, &sc), fwd = time_ms(run_forward, &sc);
    double fpt = flops_per_token(&cfg, T, W);
    printf("%-34s %9.2f ms  %7.1f GFLOP/s (model FLOPs)\n", "step (forward+backward)", step, fpt * N / step / 1e6);
    printf("%-34s %9.2f ms\n", "forward", fwd);

    /* the matrix products of one step, each with its count per step */
    struct { const char *name; int M, N, K, mode, count; } shapes[] = {
        {"x W^T      (N,C)x(C,C)", N, C, C, 0, 4 * cfg.L}, {"x W^T      (N,C)x(C,F)", N, F, C, 0, 2 * cfg.L},
        {"x W^T      (N,F)x(F,C)", N, C, F, 0, cfg.L},      {"x W^T      (N,C)x(C,V)", N, V, C, 0, 1},
        {"dx += dy W (N,C)x(C,C)", N, C, C, 1, 4 * cfg.L}, {"dx += dy W (N,F)x(F,C)", N, C, F, 1, 2 * cfg.L},
        {"dx += dy W (N,C)x(C,F)", N, F, C, 1, cfg.L},      {"dx += dy W (N,V)x(V,C)", N, C, V, 1, 1},
        {"dW += dy^T x (C,N)x(N,C)", C, C, N, 2, 4 * cfg.L}, {"dW += dy^T x (F,N)x(N,C)", F, C, N, 2, 2 * cfg.L},
        {"dW += dy^T x (C,N)x(N,F)", C, F, N, 2, cfg.L},     {"dW += dy^T x (V,N)x(N,C)", V, C, N, 2, 1},
    };
    size_t most = 0; /* the largest operand of any shape (the weights exceed the activations when N is small) */
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        size_t M = shapes[s].M, Nn = shapes[s].N, K = shapes[s].K;
        size_t sizes[3] = {M * K, K * Nn, M * Nn};
        for (int i = 0; i < 3; i++) most = sizes[i] > most ? sizes[i] : most;
    }
    float *bufA = xcalloc(most, 4, "bench"), *bufB = xcalloc(most, 4, "bench"), *bufC = xcalloc(most, 4, "bench");
    for (size_t i = 0; i < most; i++) bufA[i] = bufB[i] = 0.01f * (float)(i % 97);
    double gemm_total = 0;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        GemmCase g = {bufC, bufA, bufB, shapes[s].M, shapes[s].N, shapes[s].K, shapes[s].mode};
        double ms = time_ms(run_gemm, &g);
        gemm_total += ms * shapes[s].count;
        printf("%-34s %9.2f ms  %7.1f GFLOP/s  x%d per step\n", shapes[s].name, ms,
               2.0 * shapes[s].M * shapes[s].N * shapes[s].K / ms / 1e6, shapes[s].count);
    }
    printf("%-34s %9.2f ms  (%.0f%% of the step)\n", "all matrix products", gemm_total, 100 * gemm_total / step);

    AttnCase ac = {&m, 0, 0};
    double af = time_ms(run_attention, &ac);
    ac.backward = 1;
    double ab = time_ms(run_attention, &ac);
    double band = 0;
    for (int t = 0; t < T; t++) band += t + 1 < W ? t + 1 : W;
    double aflops = 4.0 * band * C * B; /* q.k and a*v over the band, per layer */
    printf("%-34s %9.2f ms  %7.1f GFLOP/s  x%d per step\n", "attention forward", af, aflops / af / 1e6, cfg.L);
    printf("%-34s %9.2f ms  %7.1f GFLOP/s  x%d per step\n", "attention backward", ab, 2 * aflops / ab / 1e6, cfg.L);
    double attn_total = (af + ab) * cfg.L;
    printf("%-34s %9.2f ms  (%.0f%% of the step)\n", "all attention", attn_total, 100 * attn_total / step);
    /* per step: rmsnorm 2L+1 each way, rope 2L each way, zeroing dq, dk, dv per layer plus dx and
     * dlogits (N,V = N,C here; no (N,F) buffer is zeroed), residual adds 2L */
    int counts[E_COUNT] = {2 * cfg.L + 1, 2 * cfg.L + 1, cfg.L, cfg.L, 4 * cfg.L, 0, 3 * cfg.L + 2, 2 * cfg.L, 1, 1, 1, 1};
    double elt_total = 0;
    for (int e = 0; e < E_COUNT; e++) {
        if (!counts[e]) continue;
        EltCase ec = {&m, e};
        double ms = time_ms(run_elt, &ec);
        elt_total += ms * counts[e];
        printf("%-34s %9.2f ms  x%d per step\n", elt_names[e], ms, counts[e]);
    }
    printf("%-34s %9.2f ms  (%.0f%% of the step)\n", "all elementwise layers", elt_total, 100 * elt_total / step);
    double rest = step - gemm_total - attn_total - elt_total;
    printf("%-34s %9.2f ms  (%.0f%% of the step)\n", "the rest (waiting, cache misses)", rest, 100 * rest / step);
    free(bufA); free(bufB); free(bufC); free(in); free(tg);
    model_free(&m);
    return 0;
}
