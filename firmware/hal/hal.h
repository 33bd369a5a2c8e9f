/* The hardware layer the core calls: one implementation per target (hal/host, hal/rp2040). */
#ifndef MUX_HAL_H
#define MUX_HAL_H

#include <stddef.h>
#include <stdint.h>

/* Shift `image` (chain bit k = image[k / 8] bit k % 8; bit 0 nearest the MCU) into the
 * 74HC595 chain and latch it onto the switch drivers. */
void hal_switches_write(const uint8_t *image, size_t nbytes);

/* Wait until switches set by the last write have settled. */
void hal_settle(void);

/* Parallel-load the 74HC165 read-back chain and shift it into `image` (same bit order). */
void hal_switches_read(uint8_t *image, size_t nbytes);

/* Milliseconds from a free-running clock (wraps). */
uint32_t hal_millis(void);

#endif
