/*
 * fuzz/fuzz_common.h: what the three libFuzzer targets share. Include it first, then
 * train_swat.c (through SWAT_SOURCE, default "../train_swat.c"; fuzz/run.sh can point it at
 * another copy).
 *
 *   - die() is redirected (SWAT_DIE_HOOK) to fuzz_die(), which formats the message (so the
 *     format arguments are evaluated under the sanitizers), checks the format is one line,
 *     and longjmps back to the fuzz entry point. An error is an expected outcome, not a crash.
 *   - fopen/fclose are wrapped so that a FILE left open by a die() is closed afterwards (else
 *     the process runs out of descriptors after a few thousand inputs).
 *   - fuzz_write_input() puts the input in a per-process file under /dev/shm (or TMPDIR),
 *     because the loaders take paths.
 * Allocations a die() leaves behind are freed by each target where it can (model_free,
 * the shard's tokens); anything else is an expected leak: run with -detect_leaks=0.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static jmp_buf fuzz_jmp;
static int fuzz_armed;          /* 1 while a fuzz call is running: die() may longjmp */
static char fuzz_last_error[1024];
static int fuzz_must_not_die;   /* 1 around calls that must succeed: a die() there is a finding */

__attribute__((noreturn, format(printf, 1, 2))) static void fuzz_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fuzz_last_error, sizeof fuzz_last_error, fmt, ap);
    va_end(ap);
    /* the trainer promises one-line errors. Only the format is checked here: a newline that
     * comes from the input (a flag value, a path) is the job of the trainer's own die(),
     * which this hook replaces (tests/reliability.sh checks that through the binary). */
    if (strchr(fmt, '\n')) {
        fprintf(stderr, "fuzz: error format is not one line: %s\n", fmt);
        abort();
    }
    if (fuzz_must_not_die) {
        fprintf(stderr, "fuzz: die() where the input is valid: %s\n", fuzz_last_error);
        abort();
    }
    if (!fuzz_armed) {
        fprintf(stderr, "fuzz: die() outside a fuzz call: %s\n", fuzz_last_error);
        abort();
    }
    longjmp(fuzz_jmp, 1);
}
#define SWAT_DIE_HOOK fuzz_die

/* FILEs opened by the code under test, so a die() between fopen and fclose leaks nothing */
#define FUZZ_MAX_FILES 16
static FILE *fuzz_files[FUZZ_MAX_FILES];
static FILE *fuzz_fopen(const char *path, const char *mode) {
    FILE *f = fopen(path, mode);
    if (f)
        for (int i = 0; i < FUZZ_MAX_FILES; i++)
            if (!fuzz_files[i]) { fuzz_files[i] = f; break; }
    return f;
}
static int fuzz_fclose(FILE *f) {
    for (int i = 0; i < FUZZ_MAX_FILES; i++)
        if (fuzz_files[i] == f) fuzz_files[i] = NULL;
    return fclose(f);
}
__attribute__((unused)) static void fuzz_close_all(void) {
    for (int i = 0; i < FUZZ_MAX_FILES; i++)
        if (fuzz_files[i]) { fclose(fuzz_files[i]); fuzz_files[i] = NULL; }
}

/* the fuzz input as a file: a fixed per-process path, rewritten for every input */
__attribute__((unused)) static const char *fuzz_write_input(const uint8_t *data, size_t size) {
    static char path[256];
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        snprintf(path, sizeof path, "%s/swat_fuzz_%ld.bin", dir, (long)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    if (size && fwrite(data, 1, size, f) != size) { perror(path); abort(); }
    if (fclose(f) != 0) { perror(path); abort(); }
    return path;
}

__attribute__((unused)) static uint32_t fuzz_u32(const uint8_t *data, size_t size, size_t off) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) v |= (uint32_t)(off + i < size ? data[off + i] : 0) << (8 * i);
    return v;
}

/* CRC-32 as zlib computes it (reflected polynomial 0xEDB88320, initial and final XOR
 * 0xffffffff), written here independently of train_swat.c so that the targets can check the
 * trainer's crc32_update against it: fuzz_crc32(0, buf, n) == zlib.crc32(buf), and
 * fuzz_crc32(fuzz_crc32(0, a, na), b, nb) == zlib.crc32(a + b). Bitwise: slow, but the
 * inputs are at most a few KB. */
__attribute__((unused)) static uint32_t fuzz_crc32(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

#define fopen fuzz_fopen
#define fclose fuzz_fclose

#ifndef SWAT_SOURCE
#define SWAT_SOURCE "../train_swat.c"
#endif

#endif
