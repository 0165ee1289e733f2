/* The machine's peak float32 FLOP/s, measured: every thread runs many independent chains of
 * acc = acc*x + y on vectors (enough chains to hide the FMA latency), which the
 * compiler turns into back-to-back vector FMAs. Prints "peak_gflops <x> threads <n>".
 * Build with the trainer's flags: cc -O3 -march=native -ffp-contract=fast -fopenmp. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
/* The chains must fit the vector registers, or the loop spills and measures memory instead:
 * AVX-512 has 32 registers of 16 floats (24 chains of one register), AVX2 16 of 8 (12 chains
 * of one), SSE 16 of 4. Twelve or more chains cover two FMA units of latency 4-6 cycles. */
#if defined(__AVX512F__)
#define CHAINS 24
#define LANES 16
#elif defined(__AVX__)
#define CHAINS 12
#define LANES 8
#else
#define CHAINS 12
#define LANES 4
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static float run(long iters, float x, float y) {
    float acc[CHAINS][LANES];
    for (int c = 0; c < CHAINS; c++)
        for (int j = 0; j < LANES; j++) acc[c][j] = (float)(c + j) * 1e-3f;
    for (long i = 0; i < iters; i++)
        #pragma GCC unroll 24
        for (int c = 0; c < CHAINS; c++)
            for (int j = 0; j < LANES; j++) acc[c][j] = acc[c][j] * x + y;
    float s = 0;
    for (int c = 0; c < CHAINS; c++)
        for (int j = 0; j < LANES; j++) s += acc[c][j];
    return s;
}

int main(void) {
    long iters = 20000000;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    double best = 0;
    volatile float sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        #pragma omp parallel reduction(+ : sink)
        sink += run(iters, 0.999f, 0.001f);
        double dt = now() - t0;
        double gflops = 2.0 * CHAINS * LANES * iters * threads / dt / 1e9;
        if (gflops > best) best = gflops;
    }
    printf("peak_gflops %.1f threads %d\n", best, threads);
    return 0;
}
