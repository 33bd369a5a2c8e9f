/* The few RP2040 registers the hardware layer uses (RP2040 datasheet, chapter 2 and 4). */
#ifndef RP2040_REGS_H
#define RP2040_REGS_H

#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(addr))
#define CLR_ALIAS 0x3000u /* write 1s to clear bits atomically */

#define RESETS 0x4000c000u
#define RESETS_RESET REG(RESETS + 0x0)
#define RESETS_DONE REG(RESETS + 0x8)
#define RST_IO_BANK0 (1u << 5)
#define RST_PADS_BANK0 (1u << 8)
#define RST_PLL_SYS (1u << 12)
#define RST_SPI0 (1u << 16)
#define RST_TIMER (1u << 21)
#define RST_UART0 (1u << 22)

#define XOSC 0x40024000u
#define PLL_SYS 0x40028000u
#define CLOCKS 0x40008000u
#define WATCHDOG_TICK REG(0x40058000u + 0x2c)

#define IO_BANK0 0x40014000u
#define GPIO_CTRL(n) REG(IO_BANK0 + 0x004 + 8u * (n))
#define GPIO_INTR(n) REG(IO_BANK0 + 0x0f0 + 4u * ((n) / 8u))
#define GPIO_PROC0_INTE(n) REG(IO_BANK0 + 0x100 + 4u * ((n) / 8u))
#define GPIO_EDGE_HIGH(n) (1u << (4u * ((n) % 8u) + 3u))
#define FUNC_SPI 1u
#define FUNC_UART 2u
#define FUNC_SIO 5u

#define PADS_BANK0 0x4001c000u
#define PAD(n) REG(PADS_BANK0 + 0x04 + 4u * (n))
#define PAD_IE (1u << 6)
#define PAD_PDE (1u << 2)

#define SIO 0xd0000000u
#define SIO_OUT_SET REG(SIO + 0x014)
#define SIO_OUT_CLR REG(SIO + 0x018)
#define SIO_OE_SET REG(SIO + 0x024)

#define TIMER_RAWH REG(0x40054000u + 0x24) /* microseconds, high word */
#define TIMER_RAWL REG(0x40054000u + 0x28) /* microseconds, low word */
#define TIMER_ALARM(n) REG(0x40054000u + 0x10 + 4u * (n))
#define TIMER_ARMED REG(0x40054000u + 0x20)
#define TIMER_INTR REG(0x40054000u + 0x34)
#define TIMER_INTE REG(0x40054000u + 0x38)

#define SPI0 0x4003c000u
#define SPI_CR0 REG(SPI0 + 0x00)
#define SPI_CR1 REG(SPI0 + 0x04)
#define SPI_DR REG(SPI0 + 0x08)
#define SPI_SR REG(SPI0 + 0x0c)
#define SPI_CPSR REG(SPI0 + 0x10)
#define SPI_SR_TNF (1u << 1)
#define SPI_SR_RNE (1u << 2)
#define SPI_SR_BSY (1u << 4)

#define UART0 0x40034000u
#define UART_DR REG(UART0 + 0x00)
#define UART_FR REG(UART0 + 0x18)
#define UART_IBRD REG(UART0 + 0x24)
#define UART_FBRD REG(UART0 + 0x28)
#define UART_LCR_H REG(UART0 + 0x2c)
#define UART_CR REG(UART0 + 0x30)
#define UART_FR_RXFE (1u << 4)
#define UART_FR_TXFF (1u << 5)

#define NVIC_ISER REG(0xe000e100u)
#define IRQ_IO_BANK0 13u

#endif
