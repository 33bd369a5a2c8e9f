/* The hardware layer the core calls: one implementation per target (hal/host, hal/rp2040). */
#ifndef MUX_HAL_H
#define MUX_HAL_H

#include <stddef.h>
#include <stdint.h>

/* Shift `image` (chain bit k = image[k / 8] bit k % 8; bit 0 nearest the MCU) into the
 * 74HC595 chain and latch it onto the switch drivers. */
void hal_switches_write(const uint8_t *image, size_t nbytes);

/* Busy-wait `us` microseconds (a route command's settling). */
void hal_wait_us(uint32_t us);

/* Microseconds from a free-running clock: the time base of table runs and trigger edges. */
uint64_t hal_micros(void);

/* A pulse on TRIG OUT `line` (1..2): high now, low again `width_us` later, timed by the
 * hardware; hal_trig_fall() ends it early (a run stopped). */
void hal_trig_rise(unsigned line, uint32_t width_us);
void hal_trig_fall(unsigned line);

/* Parallel-load the 74HC165 read-back chain and shift it into `image` (same bit order). */
void hal_switches_read(uint8_t *image, size_t nbytes);

/* Milliseconds from a free-running clock (wraps). */
uint32_t hal_millis(void);

#endif
