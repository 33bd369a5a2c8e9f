/* RP2040 hardware layer: clocks, the two shift-register chains on SPI0, TRIG IN on a GPIO
 * interrupt, the host link on UART0. Register level, no SDK. */
#include "board.h"
#include "hal.h"
#include "hal_rp2040.h"
#include "rp2040.h"

/* TRIG IN rising edges not yet handled: line and time, written by the interrupt only */
#define EDGE_RING 64u
static volatile uint8_t edge_line[EDGE_RING];
static volatile uint64_t edge_time[EDGE_RING];
static volatile uint32_t edge_head, edge_tail;

static void unreset(uint32_t bits)
{
    REG(RESETS + CLR_ALIAS) = bits;
    while ((RESETS_DONE & bits) != bits)
        ;
}

/* 12 MHz crystal -> PLL 1500 MHz / 6 / 2 = 125 MHz clk_sys; clk_peri = clk_sys; 1 us timer. */
static void clocks_init(void)
{
    REG(XOSC + 0x00) = 0xaa0;                     /* 1-15 MHz range */
    REG(XOSC + 0x0c) = 47;                        /* startup delay, ~1 ms */
    REG(XOSC + 0x00) = 0xaa0 | (0xfabu << 12);    /* enable */
    while (!(REG(XOSC + 0x04) & (1u << 31)))      /* stable */
        ;
    REG(CLOCKS + 0x30) = 2;                       /* clk_ref <- xosc */
    while (!(REG(CLOCKS + 0x38) & (1u << 2)))
        ;
    REG(CLOCKS + 0x3c) = 0;                       /* clk_sys <- clk_ref while the PLL starts */
    while (!(REG(CLOCKS + 0x44) & 1u))
        ;
    REG(RESETS + 0x2000) = RST_PLL_SYS;           /* set alias: hold the PLL in reset */
    unreset(RST_PLL_SYS);
    REG(PLL_SYS + 0x00) = 1;                      /* REFDIV 1 */
    REG(PLL_SYS + 0x08) = 125;                    /* VCO = 12 MHz * 125 */
    REG(PLL_SYS + 0x04 + CLR_ALIAS) = (1u << 0) | (1u << 5); /* power up PLL and VCO */
    while (!(REG(PLL_SYS + 0x00) & (1u << 31)))  /* lock */
        ;
    REG(PLL_SYS + 0x0c) = (6u << 16) | (2u << 12); /* post dividers */
    REG(PLL_SYS + 0x04 + CLR_ALIAS) = 1u << 3;   /* power up the post dividers */
    REG(CLOCKS + 0x3c) = 1;                       /* clk_sys <- aux (pll_sys) */
    while (!(REG(CLOCKS + 0x44) & (1u << 1)))
        ;
    REG(CLOCKS + 0x48) = 1u << 11;                /* clk_peri <- clk_sys, enabled */
    WATCHDOG_TICK = (1u << 9) | 12u;              /* timer ticks at 12 MHz / 12 = 1 MHz */
}

static void gpio_func(unsigned pin, uint32_t func)
{
    PAD(pin) = PAD_IE | (pin == PIN_TRIG_IN1 || pin == PIN_TRIG_IN2 ? PAD_PDE : 0);
    GPIO_CTRL(pin) = func;
}

static const unsigned trig_in_pin[2] = {PIN_TRIG_IN1, PIN_TRIG_IN2};
static const unsigned trig_out_pin[2] = {PIN_TRIG_OUT1, PIN_TRIG_OUT2};

void hal_rp2040_init(void)
{
    clocks_init();
    unreset(RST_IO_BANK0 | RST_PADS_BANK0 | RST_SPI0 | RST_TIMER | RST_UART0);
    SIO_OUT_SET = (1u << PIN_OE) | (1u << PIN_LOAD);
    SIO_OUT_CLR = (1u << PIN_LATCH) | (1u << PIN_TRIG_OUT1) | (1u << PIN_TRIG_OUT2);
    SIO_OE_SET = (1u << PIN_OE) | (1u << PIN_LOAD) | (1u << PIN_LATCH) | (1u << PIN_TRIG_OUT1) |
                 (1u << PIN_TRIG_OUT2);
    for (unsigned pin = PIN_LATCH; pin <= PIN_OE; pin++)
        gpio_func(pin, FUNC_SIO);
    gpio_func(PIN_TRIG_OUT1, FUNC_SIO);
    gpio_func(PIN_TRIG_OUT2, FUNC_SIO);
    gpio_func(PIN_SCK, FUNC_SPI);
    gpio_func(PIN_MOSI, FUNC_SPI);
    gpio_func(PIN_MISO, FUNC_SPI);
    SPI_CPSR = SPI_CPSDVSR;
    SPI_CR0 = (SPI_SCR << 8) | 7u; /* 8-bit frames, mode 0 */
    SPI_CR1 = 1u << 1;             /* enable, master */
    gpio_func(PIN_UART_TX, FUNC_UART);
    gpio_func(PIN_UART_RX, FUNC_UART);
    {
        uint32_t div = (8u * CLK_SYS_HZ / UART_BAUD + 1u) / 2u; /* 64 x clk / (16 x baud) */
        UART_IBRD = div >> 6;
        UART_FBRD = div & 63u;
    }
    UART_LCR_H = (3u << 5) | (1u << 4); /* 8 bits, FIFOs on */
    UART_CR = (1u << 9) | (1u << 8) | 1u;
    for (unsigned i = 0; i < 2; i++) {
        unsigned pin = trig_in_pin[i];
        gpio_func(pin, FUNC_SIO);
        GPIO_INTR(pin) = GPIO_EDGE_HIGH(pin);
        GPIO_PROC0_INTE(pin) |= GPIO_EDGE_HIGH(pin);
    }
    TIMER_INTE = 3u; /* alarms 0 and 1: the ends of TRIG OUT pulses */
    NVIC_ISER = (1u << IRQ_IO_BANK0) | 3u;
}

/* Once the core has cleared the chain (mux_init): let the drivers follow it. */
void hal_rp2040_enable_outputs(void)
{
    SIO_OUT_CLR = 1u << PIN_OE;
}

void isr_irq13(void)
{
    uint64_t t = hal_micros();
    for (unsigned i = 0; i < 2; i++) {
        unsigned pin = trig_in_pin[i];
        if (GPIO_INTR(pin) & GPIO_EDGE_HIGH(pin)) {
            GPIO_INTR(pin) = GPIO_EDGE_HIGH(pin); /* acknowledge */
            if (edge_head - edge_tail < EDGE_RING) {
                edge_line[edge_head % EDGE_RING] = (uint8_t)(i + 1);
                edge_time[edge_head % EDGE_RING] = t;
                edge_head++;
            }
        }
    }
}

bool hal_rp2040_take_edge(unsigned *line, uint64_t *t)
{
    if (edge_tail == edge_head)
        return false;
    *line = edge_line[edge_tail % EDGE_RING];
    *t = edge_time[edge_tail % EDGE_RING];
    edge_tail++;
    return true;
}

/* TRIG OUT pulses end on TIMER alarm 0 (line 1) or 1 (line 2): their width does not depend
 * on when the main loop looks. */
void hal_trig_rise(unsigned line, uint32_t width_us)
{
    uint32_t at = TIMER_RAWL + width_us;
    SIO_OUT_SET = 1u << trig_out_pin[line - 1];
    TIMER_ALARM(line - 1) = at; /* arms the alarm */
}

void hal_trig_fall(unsigned line)
{
    TIMER_ARMED = 1u << (line - 1); /* disarm */
    SIO_OUT_CLR = 1u << trig_out_pin[line - 1];
}

void isr_irq0(void)
{
    TIMER_INTR = 1u;
    SIO_OUT_CLR = 1u << PIN_TRIG_OUT1;
}

void isr_irq1(void)
{
    TIMER_INTR = 2u;
    SIO_OUT_CLR = 1u << PIN_TRIG_OUT2;
}

/* Shift `n` bytes out (from `out`, or zeros) and, if `in`, keep the bytes shifted in; the
 * 8-deep FIFOs stay busy, so the bytes follow each other without gaps. */
static void spi_transfer(const uint8_t *out, uint8_t *in, size_t n, int backwards)
{
    size_t sent = 0, got = 0;
    while (got < n) {
        if (sent < n && sent - got < 8 && (SPI_SR & SPI_SR_TNF)) {
            SPI_DR = out ? out[backwards ? n - 1 - sent : sent] : 0;
            sent++;
        }
        if (SPI_SR & SPI_SR_RNE) {
            uint8_t byte = (uint8_t)SPI_DR;
            if (in)
                in[got] = byte;
            got++;
        }
    }
}

void hal_switches_write(const uint8_t *image, size_t nbytes)
{
    /* the last bit shifted lands on the first register's QA: send from the far end, MSB first */
    spi_transfer(image, NULL, nbytes, 1);
    while (SPI_SR & SPI_SR_BSY)
        ;
    SIO_OUT_SET = 1u << PIN_LATCH;
    SIO_OUT_CLR = 1u << PIN_LATCH;
}

void hal_wait_us(uint32_t us)
{
    uint32_t start = TIMER_RAWL;
    while (TIMER_RAWL - start < us)
        ;
}

void hal_switches_read(uint8_t *image, size_t nbytes)
{
    SIO_OUT_CLR = 1u << PIN_LOAD; /* sample every switch line at once */
    SIO_OUT_CLR = 1u << PIN_LOAD; /* (a second write: >= 20 ns low at 125 MHz) */
    SIO_OUT_SET = 1u << PIN_LOAD;
    spi_transfer(NULL, image, nbytes, 0); /* the first register's H input comes out first */
}

uint64_t hal_micros(void)
{
    uint32_t high, low;
    do { /* the 64-bit microsecond count, read high-low-high so no carry slips between */
        high = TIMER_RAWH;
        low = TIMER_RAWL;
    } while (high != TIMER_RAWH);
    return ((uint64_t)high << 32) | low;
}

uint32_t hal_millis(void)
{
    return (uint32_t)(hal_micros() / 1000u);
}

int hal_rp2040_getc(void)
{
    return (UART_FR & UART_FR_RXFE) ? -1 : (int)(UART_DR & 0xffu);
}

void hal_rp2040_write(const char *p, size_t n)
{
    while (n--) {
        while (UART_FR & UART_FR_TXFF)
            ;
        UART_DR = (uint8_t)*p++;
    }
}
