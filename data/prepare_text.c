/*
 * prepare_text: turn a text file into byte-level train/val token shards.
 *
 *   prepare_text INPUT.txt OUTDIR [--val-fraction X]
 *
 * Tokenizer: one token per byte (token = byte value, vocabulary size 256).
 * The first (1 - X) of the file becomes OUTDIR/train.bin and the last X becomes
 * OUTDIR/val.bin, so the two splits are disjoint contiguous pieces of the text and
 * concatenating their tokens gives back the input exactly.
 *
 * Shard format (llm.c): a header of 256 little-endian int32, [0] = 20240520 (magic),
 * [1] = 1 (version), [2] = N (number of tokens), then N little-endian uint16 tokens.
 *
 * Each shard is written to OUTDIR/NAME.tmp, flushed, fsync'ed and only then renamed
 * to OUTDIR/NAME, so a crash never leaves a half-written shard behind.
 *
 * Build: cc -std=c11 -O2 -Wall -Wextra -o prepare_text prepare_text.c
 */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat, fsync, mkdir */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC 20240520
#define VERSION 1
#define HEADER_INTS 256
#define MIN_TOKENS 2 /* a shard needs at least one (input, target) pair */
#define CHUNK 65536

static const char *usage =
    "usage: prepare_text INPUT.txt OUTDIR [--val-fraction X]\n"
    "\n"
    "Turns a text file into byte-level token shards (token = byte value, V = 256):\n"
    "  OUTDIR/train.bin  the first (1 - X) of the file\n"
    "  OUTDIR/val.bin    the last X of the file\n"
    "X must be in (0, 1); default 0.05. Each split must hold at least 2 tokens.\n"
    "OUTDIR is created if it does not exist (its parent must exist).\n"
    "Shard format: 256 int32 header [20240520, 1, N, 0...], then N uint16 tokens,\n"
    "all little-endian.\n";

/* Print one error line "prepare_text: WHAT: PROBLEM" and exit 1. */
static void die(const char *what, const char *problem) {
    fprintf(stderr, "prepare_text: %s: %s\n", what, problem);
    exit(1);
}

static void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)((v >> 8) & 0xff);
    p[2] = (unsigned char)((v >> 16) & 0xff);
    p[3] = (unsigned char)((v >> 24) & 0xff);
}

/*
 * Copy the next n bytes of `in` into a new shard file `path` as uint16 tokens.
 * Returns NULL on success, or the problem as text. *read_failed tells whether the
 * problem was reading the input (rather than writing the shard).
 */
static const char *write_shard(const char *path, FILE *in, long long n, int *read_failed) {
    static unsigned char bytes[CHUNK];
    static unsigned char tokens[2 * CHUNK];
    unsigned char header[HEADER_INTS * 4];
    int err = 0; /* first errno seen while writing */

    *read_failed = 0;
    FILE *out = fopen(path, "wb");
    if (!out) return strerror(errno);

    memset(header, 0, sizeof header);
    put_le32(header + 0, MAGIC);
    put_le32(header + 4, VERSION);
    put_le32(header + 8, (uint32_t)n);
    if (fwrite(header, 1, sizeof header, out) != sizeof header) err = errno ? errno : EIO;

    for (long long left = n; !err && left > 0;) {
        size_t want = left < CHUNK ? (size_t)left : CHUNK;
        size_t got = fread(bytes, 1, want, in);
        if (got != want) {
            *read_failed = 1;
            const char *why = ferror(in) ? strerror(errno) : "file shrank while being read";
            fclose(out);
            return why;
        }
        for (size_t i = 0; i < got; i++) { /* uint16 little-endian: the byte, then 0 */
            tokens[2 * i] = bytes[i];
            tokens[2 * i + 1] = 0;
        }
        if (fwrite(tokens, 1, 2 * got, out) != 2 * got) err = errno ? errno : EIO;
        left -= (long long)got;
    }
    if (!err && fflush(out) != 0) err = errno ? errno : EIO;
    if (!err && fsync(fileno(out)) != 0) err = errno;
    if (fclose(out) != 0 && !err) err = errno ? errno : EIO;
    return err ? strerror(err) : NULL;
}

int main(int argc, char **argv) {
    const char *input = NULL, *outdir = NULL, *frac_arg = "0.05";

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--val-fraction") == 0) {
            if (i + 1 >= argc) die("--val-fraction", "missing value (expected a number in (0,1))");
            frac_arg = argv[++i];
        } else if (strncmp(a, "--val-fraction=", 15) == 0) {
            frac_arg = a + 15;
        } else if (a[0] == '-' && a[1] != '\0') {
            die(a, "unknown option (try --help)");
        } else if (!input) {
            input = a;
        } else if (!outdir) {
            outdir = a;
        } else {
            die(a, "unexpected extra argument (usage: prepare_text INPUT.txt OUTDIR [--val-fraction X])");
        }
    }
    if (!input || !outdir)
        die("usage", "prepare_text INPUT.txt OUTDIR [--val-fraction X] (try --help)");

    /* --val-fraction: a plain number strictly between 0 and 1 (NaN fails both tests). */
    char *end;
    errno = 0;
    double frac = strtod(frac_arg, &end);
    if (end == frac_arg || *end != '\0' || errno != 0 || !(frac > 0.0 && frac < 1.0)) {
        char msg[256];
        snprintf(msg, sizeof msg, "bad value '%s' (must be a number strictly between 0 and 1)", frac_arg);
        die("--val-fraction", msg);
    }

    /* Open the input and get its size; it must be a regular file. */
    FILE *in = fopen(input, "rb");
    if (!in) die(input, strerror(errno));
    struct stat st;
    if (fstat(fileno(in), &st) != 0) die(input, strerror(errno));
    if (!S_ISREG(st.st_mode)) die(input, "not a regular file");
    long long size = (long long)st.st_size;
    if (size == 0) die(input, "file is empty");

    /* Split: val is the last round(size * frac) bytes, train is the rest. */
    long long n_val = (long long)((double)size * frac + 0.5);
    long long n_train = size - n_val;
    if (n_train < MIN_TOKENS || n_val < MIN_TOKENS) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "too small to split (%lld bytes with --val-fraction %g gives %lld train + %lld val "
                 "tokens; each split needs at least %d)",
                 size, frac, n_train, n_val, MIN_TOKENS);
        die(input, msg);
    }
    if (n_train > INT32_MAX || n_val > INT32_MAX) {
        char msg[256];
        snprintf(msg, sizeof msg, "file too large (%lld bytes): a split would exceed the int32 token count limit %ld",
                 size, (long)INT32_MAX);
        die(input, msg);
    }

    /* Make OUTDIR if needed (one level only). An existing file there fails on open below. */
    if (mkdir(outdir, 0777) != 0 && errno != EEXIST) die(outdir, strerror(errno));

    const char *names[2] = {"train.bin", "val.bin"};
    long long counts[2] = {n_train, n_val};
    size_t plen = strlen(outdir) + 32;
    char *tmp[2], *final[2];
    for (int s = 0; s < 2; s++) {
        tmp[s] = malloc(plen);
        final[s] = malloc(plen);
        if (!tmp[s] || !final[s]) die("prepare_text", "out of memory");
        snprintf(tmp[s], plen, "%s/%s.tmp", outdir, names[s]);
        snprintf(final[s], plen, "%s/%s", outdir, names[s]);
    }

    /* Write both .tmp files first, then rename both: a failed write leaves no new shard. */
    for (int s = 0; s < 2; s++) {
        int read_failed;
        const char *err = write_shard(tmp[s], in, counts[s], &read_failed);
        if (err) {
            for (int k = 0; k <= s; k++) remove(tmp[k]);
            die(read_failed ? input : tmp[s], err);
        }
    }
    fclose(in);
    for (int s = 0; s < 2; s++) {
        if (rename(tmp[s], final[s]) != 0) {
            const char *err = strerror(errno);
            for (int k = s; k < 2; k++) remove(tmp[k]);
            die(final[s], err);
        }
    }

    printf("prepare_text: %s (%lld bytes) -> %s: %lld tokens, %s: %lld tokens\n", input, size, final[0],
           n_train, final[1], n_val);
    for (int s = 0; s < 2; s++) {
        free(tmp[s]);
        free(final[s]);
    }
    return 0;
}
