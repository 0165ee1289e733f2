/*
 * fuzz/fuzz_shard.c: libFuzzer target for shard_load() (spec section 4). The input is the
 * token shard file. The shard format leaves header words 3..255 free, so the target takes
 * its other parameters from them (any value is a valid shard either way):
 *   word 3: vocabulary size from w = word & 0xffff: V = 256 if w = 0, 65536 if w = 0xffff, else w
 *   word 4, 5, 6: batch B = 1 + w%4, sequence T = 1 + w%16, shuffle = w&1
 *   word 7, 8: eval length E = 1 + w%16, eval window W = 1 + w%16
 *   word 9: the start token (spec section 2): none if w = 0, else (w-1) % (Vm+1) with Vm
 *           the model's vocabulary below; the id Vm makes the vocabulary one larger for it
 *           (as --vocab 257 --bos 256 does for bytes)
 *   word 10: keep_first = w%4 for the streaming evaluation (--keep-first)
 * When the shard loads, the target uses it as the trainer would: the batch loader for 3
 * batches (every token must be < V; with the start token when it is < V), the spec
 * evaluation of 4 chunks and the streaming evaluation of 32 tokens with a tiny model whose
 * vocabulary is 1 + the largest token (when that is at most 4096).
 * Build and run: fuzz/run.sh (clang -g -O1 -fsanitize=fuzzer,address,undefined).
 */
#define TESTING
#include "fuzz_common.h"
#include SWAT_SOURCE

static Shard fz_shard;
static Loader fz_loader;
static Model fz_model;
static int *fz_in, *fz_tg;

static void fz_cleanup(void) {
    fuzz_close_all();
    free(fz_shard.tokens);
    memset(&fz_shard, 0, sizeof fz_shard);
    loader_free(&fz_loader);
    memset(&fz_loader, 0, sizeof fz_loader);
    free(fz_in); free(fz_tg);
    fz_in = fz_tg = NULL;
    model_free(&fz_model);
}

static void fz_run(const char *path, const uint8_t *data, size_t size) {
    int w = (int)(fuzz_u32(data, size, 12) & 0xffff), V = w == 0 ? 256 : w == 0xffff ? 65536 : w;
    int B = 1 + (int)(fuzz_u32(data, size, 16) % 4), T = 1 + (int)(fuzz_u32(data, size, 20) % 16);
    int shuffle = (int)(fuzz_u32(data, size, 24) & 1);
    int E = 1 + (int)(fuzz_u32(data, size, 28) % 16), W = 1 + (int)(fuzz_u32(data, size, 32) % 16);
    uint32_t bos_word = fuzz_u32(data, size, 36);
    int keep_first = (int)(fuzz_u32(data, size, 40) % 4);
    shard_load(&fz_shard, path, V);
    /* the start token: fixed below once the model's vocabulary is known; the loader takes it
     * when it is below the shard's V */
    int lbos = bos_word == 0 ? -1 : (int)((bos_word - 1) % (uint32_t)V);
    for (long i = 0; i < fz_shard.n; i++)
        if (fz_shard.tokens[i] >= V) abort(); /* shard_load promised this */
    if (fz_shard.n >= (long)B * T + 1) {
        loader_init(&fz_loader, &fz_shard, B, T, shuffle, 1234, lbos, "shard");
        fz_in = xcalloc((size_t)B * T, sizeof(int), "batch");
        fz_tg = xcalloc((size_t)B * T, sizeof(int), "batch");
        for (int k = 0; k < 3; k++) {
            loader_next(&fz_loader, fz_in, fz_tg);
            for (int i = 0; i < B * T; i++)
                if (fz_in[i] < 0 || fz_in[i] >= V || fz_tg[i] < 0 || fz_tg[i] >= V) abort();
            /* with a start token every sequence begins with it */
            for (int b = 0; lbos >= 0 && b < B; b++)
                if (fz_in[b * T] != lbos) abort();
            /* the position a checkpoint would save here must be accepted by a resume */
            long cursor = fz_loader.cursor, epoch = fz_loader.epoch;
            fuzz_must_not_die = 1;
            loader_seek(&fz_loader, cursor, epoch);
            fuzz_must_not_die = 0;
        }
    }
    /* the evaluation needs a model whose vocabulary covers the shard: the smallest one, and
     * only when it is small (the logits cost V per position; this keeps the target fast) */
    int Vm = 1;
    for (long i = 0; i < fz_shard.n; i++)
        if (fz_shard.tokens[i] + 1 > Vm) Vm = fz_shard.tokens[i] + 1;
    if (Vm > 4096) return;
    int bos = bos_word == 0 ? -1 : (int)((bos_word - 1) % (uint32_t)(Vm + 1));
    ModelConfig c = {.V = bos == Vm ? Vm + 1 : Vm, .L = 1, .H = 2, .C = 4, .F = 4, .window = 4, .attn = ATTN_SIGMOID,
                     .alibi_neg = 1, .alibi_pos = 1, .rope = 1, .rope_theta = 10000, .seq_len = T,
                     .bos = bos, .version = 2};
    fuzz_must_not_die = 1; /* a valid configuration */
    if (config_problem(&c)) abort();
    fuzz_must_not_die = 0;
    model_create(&fz_model, &c); /* zero weights: the loss is log V, the indexing is what is tested */
    if ((fz_shard.n - 1) / E >= 1) {
        double loss = evaluate(&fz_model, &fz_shard, E, W, 4, 2, NULL, NULL, NULL);
        if (!(loss >= 0)) abort();
    }
    double sloss = evaluate_stream(&fz_model, &fz_shard, W, keep_first, 32, NULL);
    if (!(sloss >= 0)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input(data, size);
    fuzz_armed = 1;
    if (setjmp(fuzz_jmp) == 0) fz_run(path, data, size);
    fuzz_armed = 0;
    fuzz_must_not_die = 0;
    fz_cleanup();
    return 0;
}
