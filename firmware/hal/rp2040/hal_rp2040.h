/* What the RP2040 main loop needs from its hardware layer beyond hal.h. */
#ifndef HAL_RP2040_H
#define HAL_RP2040_H

#include <stddef.h>
#include <stdint.h>

void hal_rp2040_init(void);
void hal_rp2040_enable_outputs(void);
uint32_t hal_rp2040_take_edges(void); /* TRIG IN edges since the last call */
int hal_rp2040_getc(void);            /* a received byte, or -1 */
void hal_rp2040_write(const char *p, size_t n);
void isr_irq13(void);                 /* IO_IRQ_BANK0: TRIG IN */

#endif
