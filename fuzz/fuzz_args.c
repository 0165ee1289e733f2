/*
 * fuzz/fuzz_args.c: libFuzzer target for the command line: parse_args() (the flag table, the
 * rules between flags, the checks against --init and --resume) and the checks main() makes
 * before it touches a file. The input is split on NUL bytes into argv[1..]
 * (at most 64 arguments). Inputs with a "--help" or "-h" argument are skipped (they print
 * the usage and exit(0)). parse_args() is compiled out under TESTING, so this target does not
 * define it; main() is renamed swat_main() instead, and never called.
 * On a successful parse it also checks, as properties (abort() = a finding):
 *   - the model configuration check and the activation-memory estimate run without UB;
 *   - the learning rate schedule stays in [0, lr] during warmup and in [lr*min_lr_ratio, lr]
 *     after it, at the steps where it bends.
 * Build and run: fuzz/run.sh (clang -g -O1 -fsanitize=fuzzer,address,undefined).
 */
#define main swat_main
#include "fuzz_common.h"
#include SWAT_SOURCE
#undef main

#define FUZZ_MAX_ARGS 64

static void fz_lr_in_range(const OptimConfig *o, int step) {
    if (step < 0 || (o->steps > 0 && step >= o->steps)) return;
    /* warmup climbs from lr/warmup; after it the cosine stays in [lr*min_lr_ratio, lr] */
    double lr = lr_at_step(o, step), lo = step < o->warmup ? 0.0 : o->lr * o->min_lr_ratio;
    if (!(lr >= lo * (1 - 1e-12) && lr <= o->lr * (1 + 1e-12))) {
        fprintf(stderr, "fuzz: lr_at_step(%d) = %g outside [%g, %g] (warmup %d, steps %d)\n", step, lr, lo, o->lr,
                o->warmup, o->steps);
        abort();
    }
}

static void fz_run(int argc, char **argv) {
    static Flags flags; /* parse_args also checks the flags against --init and --resume */
    parse_args(&flags, argc, argv);
    const char *problem = config_problem(&flags.model);
    if (!problem) {
        double bytes = activation_bytes(&flags.model, flags.batch, flags.model.seq_len, flags.model.window);
        if (!(bytes > 0)) abort();
    }
    const OptimConfig *o = &flags.opt;
    if (o->warmup <= o->steps) { /* main() refuses the rest */
        int steps[] = {0, o->warmup - 1, o->warmup, o->warmup + 1, o->steps / 2, o->steps - 1};
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) fz_lr_in_range(o, steps[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[FUZZ_MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "train_swat";
    for (char *p = buf; p <= buf + size && argc <= FUZZ_MAX_ARGS; p += strlen(p) + 1) {
        if (!strcmp(p, "--help") || !strcmp(p, "-h")) { free(buf); return 0; }
        argv[argc++] = p;
    }
    argv[argc] = NULL;
    fuzz_armed = 1;
    if (setjmp(fuzz_jmp) == 0) fz_run(argc, argv);
    fuzz_armed = 0;
    fuzz_must_not_die = 0;
    free(buf);
    return 0;
}
