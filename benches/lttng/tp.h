/* The tracepoint the log-writer table measures LTTng-UST with (benches/benches/loggers.rs):
 * one event carrying the same 64-byte message as every other writer. */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER pounds_bench

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./tp.h"

#if !defined(POUNDS_BENCH_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define POUNDS_BENCH_TP_H

#include <lttng/tracepoint.h>

LTTNG_UST_TRACEPOINT_EVENT(
    pounds_bench,
    msg,
    LTTNG_UST_TP_ARGS(const char *, text),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_array_text(char, text, text, 64)
    )
)

#endif

#include <lttng/tracepoint-event.h>
