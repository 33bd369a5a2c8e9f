/* What the RP2040 main loop needs from its hardware layer beyond hal.h. */
#ifndef HAL_RP2040_H
#define HAL_RP2040_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void hal_rp2040_init(void);
void hal_rp2040_enable_outputs(void);
bool hal_rp2040_take_edge(unsigned *line, uint64_t *t); /* the oldest TRIG IN edge not taken */
int hal_rp2040_getc(void);            /* a received byte, or -1 */
void hal_rp2040_write(const char *p, size_t n);
void isr_irq13(void); /* IO_IRQ_BANK0: TRIG IN, timestamped */
void isr_irq0(void);  /* TIMER_IRQ_0: end of a TRIG OUT 1 pulse */
void isr_irq1(void);  /* TIMER_IRQ_1: end of a TRIG OUT 2 pulse */

#endif
