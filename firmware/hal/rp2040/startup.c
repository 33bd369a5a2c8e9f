/* Vector table and reset handler for the RP2040's core 0 (Cortex-M0+). */
#include <stdint.h>

#include "hal_rp2040.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);

static void reset(void)
{
    uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;
    main();
    for (;;)
        ;
}

static void halt(void)
{
    for (;;)
        ;
}

/* 16 system exceptions, then IRQ 0..25; reset, TIMER_IRQ_0/1 and IO_IRQ_BANK0 are used. */
__attribute__((section(".vectors"), used)) static void (*const vectors[16 + 26])(void) = {
    [0] = (void (*)(void))&__stack_top,
    [1] = reset,
    [2 ... 15] = halt,
    [16] = isr_irq0,
    [16 + 1] = isr_irq1,
    [16 + 2 ... 16 + 12] = halt,
    [16 + 13] = isr_irq13,
    [16 + 14 ... 16 + 25] = halt,
};
