/*
 * fuzz/fuzz_checkpoint.c: libFuzzer target for checkpoint_load() (spec section 3 + the
 * trainer state). The input is the checkpoint file. When it loads, the model is used the way
 * the trainer would use it, so that a header the loader accepts but the rest of the code
 * cannot handle shows up here too:
 *   - a forward pass on 5 tokens with the checkpoint's window, and a few tokens through the
 *     ring-buffer inference (the start token first if the model has one);
 *   - with trainer state: what --resume does with it on a 200-token shard (loader_init with
 *     the model's start token,
 *     loader_seek to the saved position, one batch, one forward/backward/AdamW step) when the
 *     batch is small.
 *
 * The CRC of version 2 (header[17], spec section 3). A random change to a valid file almost
 * never keeps its CRC right, so without help the fuzzer would only ever reach the checksum
 * error. For an input that looks like a version 2 file (at least 1024 bytes, magic "SWAT",
 * version 2) the target therefore writes the right CRC into field 17 before the load, unless
 * the low 4 bits of the input's field 17 are all 1 (1 input in 16): then the input is loaded
 * as it is and the checksum path is fuzzed too. Properties (abort() = a finding):
 *   - the trainer's crc32_update agrees with the independent bitwise CRC of fuzz_common.h,
 *     in one call and chained at a point the input chooses;
 *   - an input whose field 17 was kept and is wrong dies with the checksum error, and one
 *     whose CRC is right never does;
 *   - with trainer state, checkpoint_save of what was loaded writes the same bytes as the
 *     (CRC-fixed) input, up to the trainer-state words the loader ignores: header, weights,
 *     moments, the 10 state integers and the 7 hyperparameters, and the CRC of the writer.
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

/* checkpoint_save of a loaded checkpoint with trainer state must give back the input: the
 * header, the parameters, the moments, the state integers 0..9 and doubles 0..6 (the rest of
 * the trainer state is padding the loader does not read, and the writer zeroes). The CRC
 * (header[17]) covers that padding, so it is checked as the CRC of the written bytes. */
static void fz_round_trip(const char *path, const uint8_t *in, size_t size) {
    static char out[300];
    snprintf(out, sizeof out, "%s.rt", path);
    checkpoint_save(out, &fz_model, &fz_ts);
    FILE *f = fopen(out, "rb");
    if (!f) abort();
    uint8_t *got = malloc(size + 1);
    size_t n = fread(got, 1, size + 1, f);
    fclose(f);
    unlink(out);
    size_t P4 = 4 * fz_model.num_params, state = 1024 + 3 * P4;
    size_t ranges[3][2] = {{0, state + 8 * 10}, {state + 8 * 16, state + 8 * 16 + 8 * 7}, {0, 0}};
    if (n != size) { fprintf(stderr, "fuzz: save after load wrote %zu bytes, the input has %zu\n", n, size); abort(); }
    for (int r = 0; ranges[r][1]; r++)
        for (size_t i = ranges[r][0]; i < ranges[r][1]; i++)
            if (got[i] != in[i] && !(i >= 68 && i < 72)) { /* the CRC covers the padding: below */
                fprintf(stderr, "fuzz: save after load differs from the input at byte %zu (0x%02x, input 0x%02x)\n", i, got[i], in[i]);
                abort();
            }
    /* the writer's CRC covers its own padding: check it is the CRC of what it wrote */
    uint32_t stored = fuzz_u32(got, size, 68);
    if (fuzz_u32(got, size, 4) == 2) {
        memset(got + 68, 0, 4);
        if (fuzz_crc32(0, got, size) != stored) { fprintf(stderr, "fuzz: the writer's CRC is wrong\n"); abort(); }
    }
    free(got);
}

static void fz_run(const char *path, const uint8_t *data, size_t size) {
    int has_state = checkpoint_load(path, &fz_model, &fz_ts);
    if (has_state) {
        fuzz_must_not_die = 1;
        fz_round_trip(path, data, size);
        fuzz_must_not_die = 0;
    }
    const ModelConfig *c = &fz_model.cfg;
    int V = c->V, T = 5;
    int in[5], tg[5];
    for (int i = 0; i < T; i++) { in[i] = (i * 7 + 3) % V; tg[i] = (i * 5 + 1) % V; }
    model_forward(&fz_model, in, tg, 1, T, c->window);
    /* the ring buffer needs no more slots than positions (8 here); keep the first 0..2
     * positions too (--keep-first), chosen by the input's length; a model with a start token
     * sees it first, as in generation */
    infer_init(&fz_infer, &fz_model, c->window < 8 ? c->window : 8, (int)(size % 3), 1);
    for (int i = 0; i < 8; i++) infer_step(&fz_infer, i == 0 && c->bos >= 0 ? c->bos : (i * 3) % V);
    infer_free(&fz_infer);
    if (!has_state || (long)fz_ts.B * fz_ts.T > 64) return;
    /* what --resume does next */
    fz_shard.n = 200;
    fz_shard.tokens = xcalloc(fz_shard.n, sizeof(uint16_t), "shard");
    for (long i = 0; i < fz_shard.n; i++) fz_shard.tokens[i] = (uint16_t)((i * 7 + i / 16) % V);
    loader_init(&fz_loader, &fz_shard, fz_ts.B, fz_ts.T, fz_ts.shuffle, fz_ts.seed, c->bos, "shard");
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

#define FZ_CRC_MSG "checksum mismatch: the file is corrupt or was modified"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    int v2 = size >= 1024 && fuzz_u32(buf, size, 0) == 0x54415753u && fuzz_u32(buf, size, 4) == 2;
    int crc_wrong = 0; /* the loader must report the checksum mismatch */
    if (v2) {
        uint32_t stored = fuzz_u32(buf, size, 68);
        memset(buf + 68, 0, 4);
        uint32_t crc = fuzz_crc32(0, buf, size);
        size_t split = stored % (size + 1);
        if (crc32_update(0, buf, size) != crc || crc32_update(crc32_update(0, buf, split), buf + split, size - split) != crc) {
            fprintf(stderr, "fuzz: crc32_update disagrees with the bitwise CRC-32 (size %zu, split %zu)\n", size, split);
            abort();
        }
        uint32_t use = (stored & 0xF) == 0xF ? stored : crc;
        for (int i = 0; i < 4; i++) buf[68 + i] = (uint8_t)(use >> (8 * i));
        crc_wrong = use != crc;
    }
    const char *path = fuzz_write_input(buf, size);
    memset(&fz_model, 0, sizeof fz_model);
    memset(&fz_ts, 0, sizeof fz_ts);
    fuzz_last_error[0] = 0;
    fuzz_armed = 1;
    volatile int died = 0;
    if (setjmp(fuzz_jmp) == 0) fz_run(path, buf, size);
    else died = 1;
    fuzz_armed = 0;
    if (v2) {
        int says_crc = died && strstr(fuzz_last_error, FZ_CRC_MSG) != NULL;
        if (crc_wrong && !says_crc) {
            fprintf(stderr, "fuzz: a version 2 file with a wrong CRC was not rejected by the checksum (%s)\n",
                    died ? fuzz_last_error : "it loaded");
            abort();
        }
        if (!crc_wrong && says_crc) {
            fprintf(stderr, "fuzz: a version 2 file with the right CRC gave the checksum error\n");
            abort();
        }
    }
    free(buf);
    fuzz_must_not_die = 0;
    fz_cleanup();
    return 0;
}
