/*
 * fuzz/fuzz_checkpoint.c: libFuzzer target for checkpoint_load() (spec section 3 + the
 * trainer state). The input is the checkpoint file. When it loads, the model is used the way
 * the trainer would use it, so that a header the loader accepts but the rest of the code
 * cannot handle shows up here too:
 *   - a forward pass on 5 tokens with the checkpoint's window, and a few tokens through the
 *     ring-buffer inference;
 *   - with trainer state: what --resume does with it on a 200-token shard (loader_init,
 *     loader_seek to the saved position, one batch, one forward/backward/AdamW step) when the
 *     batch is small.
 * Build and run: fuzz/run.sh (clang -g -O1 -fsanitize=fuzzer,address,undefined).
 */
#define TESTING
#include "fuzz_common.h"
#include SWAT_SOURCE

static Model fz_model;
static TrainState fz_ts;
static Shard fz_shard;
static Loader fz_loader;
static InferState fz_infer;
static int *fz_in, *fz_tg;

static void fz_cleanup(void) {
    fuzz_close_all();
    infer_free(&fz_infer);
    loader_free(&fz_loader);
    memset(&fz_loader, 0, sizeof fz_loader);
    free(fz_shard.tokens);
    memset(&fz_shard, 0, sizeof fz_shard);
    free(fz_in); free(fz_tg);
    fz_in = fz_tg = NULL;
    model_free(&fz_model);
    memset(&fz_ts, 0, sizeof fz_ts);
}

static void fz_run(const char *path) {
    int has_state = checkpoint_load(path, &fz_model, &fz_ts);
    const ModelConfig *c = &fz_model.cfg;
    int V = c->V, T = 5;
    int in[5], tg[5];
    for (int i = 0; i < T; i++) { in[i] = (i * 7 + 3) % V; tg[i] = (i * 5 + 1) % V; }
    model_forward(&fz_model, in, tg, 1, T, c->window);
    /* the ring buffer needs no more slots than positions (8 here) */
    infer_init(&fz_infer, &fz_model, c->window < 8 ? c->window : 8);
    for (int i = 0; i < 8; i++) infer_step(&fz_infer, (i * 3) % V);
    infer_free(&fz_infer);
    if (!has_state || (long)fz_ts.B * fz_ts.T > 64) return;
    /* what --resume does next */
    fz_shard.n = 200;
    fz_shard.tokens = xcalloc(fz_shard.n, sizeof(uint16_t), "shard");
    for (long i = 0; i < fz_shard.n; i++) fz_shard.tokens[i] = (uint16_t)((i * 7 + i / 16) % V);
    loader_init(&fz_loader, &fz_shard, fz_ts.B, fz_ts.T, fz_ts.shuffle, fz_ts.seed, "shard");
    loader_seek(&fz_loader, fz_ts.cursor, fz_ts.epoch);
    size_t BT = (size_t)fz_ts.B * fz_ts.T;
    fz_in = xcalloc(BT, sizeof(int), "batch");
    fz_tg = xcalloc(BT, sizeof(int), "batch");
    loader_next(&fz_loader, fz_in, fz_tg);
    for (size_t i = 0; i < BT; i++)
        if (fz_in[i] < 0 || fz_in[i] >= V || fz_tg[i] < 0 || fz_tg[i] >= V) abort();
    if (fz_ts.opt.warmup > fz_ts.opt.steps) return; /* main refuses this */
    model_forward(&fz_model, fz_in, fz_tg, fz_ts.B, fz_ts.T, c->window);
    model_zero_grad(&fz_model);
    model_backward(&fz_model);
    double norm = grad_norm(fz_model.grads, fz_model.num_params);
    adamw_step(&fz_model, &fz_ts.opt, fz_ts.step, lr_at_step(&fz_ts.opt, fz_ts.step), norm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input(data, size);
    memset(&fz_model, 0, sizeof fz_model);
    memset(&fz_ts, 0, sizeof fz_ts);
    fuzz_armed = 1;
    if (setjmp(fuzz_jmp) == 0) fz_run(path);
    fuzz_armed = 0;
    fuzz_must_not_die = 0;
    fz_cleanup();
    return 0;
}
