/*
 * prepare_text: turn text into byte-level train/val token shards.
 *
 *   prepare_text INPUT... OUTDIR [--val-fraction X]
 *
 * INPUT is a file, or "-" for standard input; with several, their bytes are concatenated in
 * the order given (nothing is inserted between them), and the last argument is OUTDIR. So
 * `cat *.txt | prepare_text - out` and `prepare_text a.txt b.txt out` give the same shards.
 *
 * Tokenizer: one token per byte (token = byte value, vocabulary size 256).
 * The first (1 - X) of the input becomes OUTDIR/train.bin and the last X becomes
 * OUTDIR/val.bin, so the two splits are disjoint contiguous pieces of the text and
 * concatenating their tokens gives back the input exactly.
 *
 * Shard format (llm.c): a header of 256 little-endian int32, [0] = 20240520 (magic),
 * [1] = 1 (version), [2] = N (number of tokens), then N little-endian uint16 tokens.
 *
 * Regular files are read while the shards are written (their sizes fix the split up front).
 * Standard input and other streams (pipes, <(...)) are read into memory first, since the
 * split needs the total size. Each shard is written to OUTDIR/NAME.tmp, flushed, fsync'ed and only then
 * renamed to OUTDIR/NAME, so a crash never leaves a half-written shard behind.
 *
 * Build: cc -std=c11 -O2 -Wall -Wextra -o prepare_text prepare_text.c
 */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat, fsync, mkdir, isatty */

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
/* More input than this cannot fit: one of the two splits would exceed INT32_MAX tokens. */
#define MAX_INPUT (2LL * INT32_MAX + 1)

static const char *usage =
    "usage: prepare_text INPUT... OUTDIR [--val-fraction X]\n"
    "\n"
    "Turns text into byte-level token shards (token = byte value, V = 256):\n"
    "  OUTDIR/train.bin  the first (1 - X) of the input\n"
    "  OUTDIR/val.bin    the last X of the input\n"
    "INPUT is a file or - (standard input); several inputs are concatenated in the\n"
    "order given, and the last argument is always OUTDIR:\n"
    "  prepare_text a.txt b.txt out      cat *.txt | prepare_text - out\n"
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

/* One input: a regular file streamed from `f`, or a stream already held in `buf`. */
typedef struct {
    const char *name; /* as given, or "standard input" for "-" */
    FILE *f;
    int stream;         /* not a regular file: read into buf before anything is written */
    unsigned char *buf; /* the stream's bytes */
    long long size;
} Source;

/* The inputs read one after the other as a single byte sequence. */
typedef struct {
    Source *src;
    int n, cur;
    long long pos; /* bytes already taken from src[cur] */
} Input;

/*
 * Copy exactly `want` bytes of the concatenated input into dst. Returns NULL, or the
 * problem as text with *who set to the input it concerns.
 */
static const char *input_read(Input *in, unsigned char *dst, size_t want, const char **who) {
    while (want > 0) {
        if (in->cur >= in->n) { /* sizes were summed up front, so this cannot happen */
            *who = "input";
            return "ran out of data (internal error)";
        }
        Source *s = &in->src[in->cur];
        long long left = s->size - in->pos;
        if (left == 0) {
            in->cur++;
            in->pos = 0;
            continue;
        }
        size_t take = (long long)want < left ? want : (size_t)left;
        if (s->stream) {
            memcpy(dst, s->buf + in->pos, take);
        } else {
            errno = 0;
            size_t got = fread(dst, 1, take, s->f);
            if (got != take) {
                *who = s->name;
                return ferror(s->f) ? strerror(errno ? errno : EIO) : "file shrank while being read";
            }
        }
        in->pos += (long long)take;
        dst += take;
        want -= take;
    }
    return NULL;
}

/*
 * Copy the next n bytes of the input into a new shard file `path` as uint16 tokens.
 * Returns NULL on success, or the problem as text. *read_who is set to the input's name
 * when the problem was reading the input (rather than writing the shard), else NULL.
 */
static const char *write_shard(const char *path, Input *in, long long n, const char **read_who) {
    static unsigned char bytes[CHUNK];
    static unsigned char tokens[2 * CHUNK];
    unsigned char header[HEADER_INTS * 4];
    int err = 0; /* first errno seen while writing */

    *read_who = NULL;
    FILE *out = fopen(path, "wb");
    if (!out) return strerror(errno);

    memset(header, 0, sizeof header);
    put_le32(header + 0, MAGIC);
    put_le32(header + 4, VERSION);
    put_le32(header + 8, (uint32_t)n);
    if (fwrite(header, 1, sizeof header, out) != sizeof header) err = errno ? errno : EIO;

    for (long long left = n; !err && left > 0;) {
        size_t want = left < CHUNK ? (size_t)left : CHUNK;
        const char *why = input_read(in, bytes, want, read_who);
        if (why) {
            fclose(out);
            return why;
        }
        for (size_t i = 0; i < want; i++) { /* uint16 little-endian: the byte, then 0 */
            tokens[2 * i] = bytes[i];
            tokens[2 * i + 1] = 0;
        }
        if (fwrite(tokens, 1, 2 * want, out) != 2 * want) err = errno ? errno : EIO;
        left -= (long long)want;
    }
    if (!err && fflush(out) != 0) err = errno ? errno : EIO;
    if (!err && fsync(fileno(out)) != 0) err = errno;
    if (fclose(out) != 0 && !err) err = errno ? errno : EIO;
    return err ? strerror(err) : NULL;
}

/* Read a whole stream into memory (s->buf, s->size), up to MAX_INPUT + 1 bytes. */
static void slurp(Source *s) {
    size_t cap = CHUNK, len = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) die(s->name, "out of memory");
    for (;;) {
        if (len == cap) {
            if ((long long)len > MAX_INPUT) break; /* too large: reported by the size check */
            unsigned char *bigger = realloc(buf, cap * 2);
            if (!bigger) die(s->name, "out of memory while reading it");
            buf = bigger;
            cap *= 2;
        }
        errno = 0;
        size_t got = fread(buf + len, 1, cap - len, s->f);
        len += got;
        if (got == 0) {
            if (ferror(s->f)) die(s->name, strerror(errno ? errno : EIO));
            break;
        }
    }
    s->buf = buf;
    s->size = (long long)len;
}

int main(int argc, char **argv) {
    const char *frac_arg = "0.05";
    const char **pos = malloc(sizeof(char *) * (size_t)(argc > 1 ? argc : 1)); /* positionals */
    int npos = 0;
    if (!pos) die("prepare_text", "out of memory");

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
        } else {
            pos[npos++] = a; /* "-" included: it is an input */
        }
    }
    if (npos < 2)
        die("usage", "prepare_text INPUT... OUTDIR [--val-fraction X] (try --help)");
    const char *outdir = pos[npos - 1];
    int nin = npos - 1;
    if (strcmp(outdir, "-") == 0)
        die("-", "OUTDIR cannot be standard input (the last argument is the output folder)");

    /* --val-fraction: a plain number strictly between 0 and 1 (NaN fails both tests). */
    char *end;
    errno = 0;
    double frac = strtod(frac_arg, &end);
    if (end == frac_arg || *end != '\0' || errno != 0 || !(frac > 0.0 && frac < 1.0)) {
        char msg[256];
        snprintf(msg, sizeof msg, "bad value '%s' (must be a number strictly between 0 and 1)", frac_arg);
        die("--val-fraction", msg);
    }

    /* An existing OUTDIR must be a directory: say so before reading any input. */
    struct stat ost;
    if (stat(outdir, &ost) == 0 && !S_ISDIR(ost.st_mode))
        die(outdir, "exists and is not a directory (the last argument is the output folder)");

    /* A closed standard input would let the first fopen below take descriptor 0: check it first. */
    struct stat ist;
    for (int i = 0; i < nin; i++)
        if (strcmp(pos[i], "-") == 0 && fstat(STDIN_FILENO, &ist) != 0) die("standard input", strerror(errno));

    /* Open every input. Regular files: size from fstat. Streams: read into memory. */
    Source *src = calloc((size_t)nin, sizeof(Source));
    if (!src) die("prepare_text", "out of memory");
    int stdin_seen = 0;
    for (int i = 0; i < nin; i++) {
        Source *s = &src[i];
        struct stat st;
        if (strcmp(pos[i], "-") == 0) {
            if (stdin_seen) die("-", "standard input given more than once");
            stdin_seen = 1;
            s->name = "standard input";
            s->f = stdin;
            if (fstat(fileno(stdin), &st) != 0) die(s->name, strerror(errno));
            if (S_ISDIR(st.st_mode)) die(s->name, "is a directory");
        } else {
            s->name = pos[i];
            s->f = fopen(pos[i], "rb");
            if (!s->f) die(pos[i], strerror(errno));
            if (fstat(fileno(s->f), &st) != 0) die(pos[i], strerror(errno));
            if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) die(pos[i], "not a regular file");
        }
        if (S_ISREG(st.st_mode)) {
            s->size = (long long)st.st_size;
            /* stdin redirected from a file may start part-way in: count from there */
            if (s->f == stdin) {
                long at = ftell(stdin);
                if (at > 0) s->size -= at;
            }
        } else {
            s->stream = 1;
        }
    }
    for (int i = 0; i < nin; i++) { /* streams after every file is open: a missing file fails at once */
        if (!src[i].stream) continue;
        if (src[i].f == stdin && isatty(fileno(stdin)))
            fprintf(stderr, "prepare_text: reading standard input until end of file (Ctrl-D)\n");
        slurp(&src[i]);
    }

    /* What to call the input in messages: its name, or "N inputs". */
    char label[64];
    const char *what = src[0].name;
    if (nin > 1) {
        snprintf(label, sizeof label, "%d inputs", nin);
        what = label;
    }
    long long size = 0;
    for (int i = 0; i < nin; i++) size += src[i].size;
    if (size == 0) {
        if (nin == 1) die(what, src[0].f == stdin ? "no input (it is empty)" : "file is empty");
        die(what, "all empty (0 bytes in total)");
    }

    /* Split: val is the last round(size * frac) bytes, train is the rest. */
    long long n_val = (long long)((double)size * frac + 0.5);
    long long n_train = size - n_val;
    if (n_train < MIN_TOKENS || n_val < MIN_TOKENS) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "too small to split (%lld bytes with --val-fraction %g gives %lld train + %lld val "
                 "tokens; each split needs at least %d)",
                 size, frac, n_train, n_val, MIN_TOKENS);
        die(what, msg);
    }
    if (n_train > INT32_MAX || n_val > INT32_MAX) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s too large (%lld bytes%s): a split would exceed the int32 token count limit %ld",
                 nin > 1 ? "input" : "file", size, size > MAX_INPUT ? " or more" : "", (long)INT32_MAX);
        die(what, msg);
    }

    /* Make OUTDIR if needed (one level only). */
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
    Input in = {src, nin, 0, 0};
    for (int s = 0; s < 2; s++) {
        const char *read_who;
        const char *err = write_shard(tmp[s], &in, counts[s], &read_who);
        if (err) {
            for (int k = 0; k <= s; k++) remove(tmp[k]);
            die(read_who ? read_who : tmp[s], err);
        }
    }
    for (int i = 0; i < nin; i++) {
        if (src[i].f != stdin) fclose(src[i].f);
        free(src[i].buf);
    }
    for (int s = 0; s < 2; s++) {
        if (rename(tmp[s], final[s]) != 0) {
            const char *err = strerror(errno);
            for (int k = s; k < 2; k++) remove(tmp[k]);
            die(final[s], err);
        }
    }

    printf("prepare_text: %s (%lld bytes) -> %s: %lld tokens, %s: %lld tokens\n", what, size, final[0],
           n_train, final[1], n_val);
    for (int s = 0; s < 2; s++) {
        free(tmp[s]);
        free(final[s]);
    }
    free(src);
    free(pos);
    return 0;
}
