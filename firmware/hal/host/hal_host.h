/* The host build's simulated hardware (hal_host.c). */
#ifndef HAL_HOST_H
#define HAL_HOST_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* `shm`: a file holding the physical switch state, shared with the emulated bench (NULL: kept
 * in this process); `bench_time`: time is the emulated bench's (hal_host_set_time), not the
 * host's clock. */
void hal_host_init(const struct chain_config *chain, const char *shm, bool bench_time);

/* On bench time: time has moved on to `t_us`. */
void hal_host_set_time(uint64_t t_us);

/* The lines of what the hardware did since the last call (`S 0 <t> 0`: switches written,
 * `O <line> <t> <width>`: TRIG OUT raised), into `out`; returns their length. */
size_t hal_host_take_report(char *out, size_t cap);

#endif
