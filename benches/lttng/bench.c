/* LTTng-UST in the log-writer table (benches/benches/loggers.rs): the same measurement as the
 * Rust writers get. Usage: lttng_bench TIMED THROUGHPUT. Times TIMED tracepoint calls one by one
 * with raw TSC pairs (converted to ns by a calibration against CLOCK_MONOTONIC), measures the
 * pair alone, then THROUGHPUT calls untimed in one thread and in two; prints one RESULT line of
 * JSON in the harness's format. The session (snapshot mode) is set up by the harness. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "tp.h"

static char message[65];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t at(uint64_t *sorted, size_t n, double q) {
    size_t i = (size_t)((double)n * q);
    return sorted[i < n ? i : n - 1];
}

static size_t per_thread;

static void *writer(void *arg) {
    (void)arg;
    for (size_t i = 0; i < per_thread; i++) {
        lttng_ust_tracepoint(pounds_bench, msg, message);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: lttng_bench TIMED THROUGHPUT\n");
        return 2;
    }
    size_t timed = strtoull(argv[1], NULL, 10), through = strtoull(argv[2], NULL, 10);
    memset(message, 'x', 64);
    memcpy(message, "request 12345 served", 20);
    double t0 = now_s();
    uint64_t c0 = __rdtsc();
    while (now_s() - t0 < 0.05) {
    }
    double ns_per_tick = (now_s() - t0) * 1e9 / (double)(__rdtsc() - c0);
    for (size_t i = 0; i < 10000; i++) {
        lttng_ust_tracepoint(pounds_bench, msg, message);
    }
    uint64_t *calls = malloc(timed * sizeof *calls), *pair = malloc(timed * sizeof *pair);
    if (calls == NULL || pair == NULL) {
        return 1;
    }
    for (size_t i = 0; i < timed; i++) {
        uint64_t start = __rdtsc();
        lttng_ust_tracepoint(pounds_bench, msg, message);
        uint64_t end = __rdtsc();
        calls[i] = (uint64_t)((double)(end - start) * ns_per_tick);
        start = __rdtsc();
        end = __rdtsc();
        pair[i] = (uint64_t)((double)(end - start) * ns_per_tick);
    }
    qsort(calls, timed, sizeof *calls, cmp_u64);
    qsort(pair, timed, sizeof *pair, cmp_u64);
    double start = now_s();
    for (size_t i = 0; i < through; i++) {
        lttng_ust_tracepoint(pounds_bench, msg, message);
    }
    double one = (double)through / (now_s() - start);
    per_thread = through / 2;
    pthread_t threads[2];
    start = now_s();
    for (int t = 0; t < 2; t++) {
        pthread_create(&threads[t], NULL, writer, NULL);
    }
    for (int t = 0; t < 2; t++) {
        pthread_join(threads[t], NULL);
    }
    double two = (double)(2 * per_thread) / (now_s() - start);
    printf("RESULT {\"writer\":\"lttng_ust\",\"n\":%zu,\"p50\":%llu,\"p99\":%llu,\"p999\":%llu,"
           "\"max\":%llu,\"pair_p50\":%llu,\"pair_p99\":%llu,\"one_thread_per_s\":%.0f,"
           "\"two_threads_per_s\":%.0f}\n",
           timed, (unsigned long long)at(calls, timed, 0.5),
           (unsigned long long)at(calls, timed, 0.99), (unsigned long long)at(calls, timed, 0.999),
           (unsigned long long)calls[timed - 1], (unsigned long long)at(pair, timed, 0.5),
           (unsigned long long)at(pair, timed, 0.99), one, two);
    return 0;
}
