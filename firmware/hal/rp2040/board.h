/* Pins and rates of the RP2040 build (see firmware/README.md for the wiring). */
#ifndef MUX_BOARD_H
#define MUX_BOARD_H

#define PIN_UART_TX 0     /* UART0 TX to the host's USB-serial bridge RX */
#define PIN_UART_RX 1     /* UART0 RX from the bridge's TX */
#define PIN_SCK 2         /* SPI0 SCK: 74HC595 SRCLK and 74HC165 CLK of every board */
#define PIN_MOSI 3        /* SPI0 TX: SER of the first 74HC595 */
#define PIN_MISO 4        /* SPI0 RX: QH of the first 74HC165 */
#define PIN_LATCH 5       /* 74HC595 RCLK: the shifted image reaches the switch drivers */
#define PIN_LOAD 6        /* 74HC165 SH/LD (low: sample the switch lines) */
#define PIN_OE 7          /* 74HC595 /OE, pulled up on the boards: switches open until driven */
#define PIN_TRIG_IN1 15   /* TRIG IN 1, rising edge: the SMU's completion output */
#define PIN_TRIG_IN2 14   /* TRIG IN 2, rising edge: a second instrument output */
#define PIN_TRIG_OUT1 16  /* TRIG OUT 1, active high: the pulse generator's trigger input */
#define PIN_TRIG_OUT2 17  /* TRIG OUT 2, active high: the SMU's trigger input */

#define CLK_SYS_HZ 125000000u
#define SPI_CPSDVSR 2u    /* SPI clock = clk_peri / (CPSDVSR * (1 + SCR)) */
#define SPI_SCR 7u        /* 125 MHz / 16 = 7.8 MHz: margin for 40 boards of cable */
#define UART_BAUD 115200u

#endif
