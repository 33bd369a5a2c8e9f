/* The host build's simulated hardware (hal_host.c). */
#ifndef HAL_HOST_H
#define HAL_HOST_H

#include "config.h"

/* `shm`: a file holding the physical switch state, shared with the emulated bench (NULL: kept
 * in this process); `settle_us`: what hal_settle() waits. */
void hal_host_init(const struct chain_config *chain, const char *shm, long settle_us);

#endif
