/* Where each switch sits in the daisy-chained shift registers: the one table a lab edits.
 *
 * The switch drivers are a chain of 74HC595s, the read-back a chain of 74HC165s wired to sense
 * the same switch lines in the same order. Each board occupies `bits` consecutive chain bits
 * (six registers = 48 bits for the 42 switches of a 12 x 10 board); `layout` gives, inside a
 * board's block, the bit of every WL gate, BL-to-source-bus, SL-to-ground and SL-to-measure
 * switch. `board_id[k]` is the id of the board whose block is k-th from the MCU. */
#ifndef MUX_CONFIG_H
#define MUX_CONFIG_H

#include <stdint.h>

#define MUX_ROWS 12
#define MUX_COLS 10
#ifndef MUX_MAX_BOARDS
#define MUX_MAX_BOARDS 64
#endif
#define MUX_BOARD_BITS_MAX 64
#define MUX_CHAIN_BYTES (MUX_MAX_BOARDS * MUX_BOARD_BITS_MAX / 8)

struct board_layout {
    uint8_t bits; /* chain bits per board, a multiple of 8 */
    uint8_t wl[MUX_COLS];
    uint8_t bls[MUX_ROWS];
    uint8_t slg[MUX_COLS];
    uint8_t slm[MUX_COLS];
};

struct chain_config {
    const struct board_layout *layout;
    uint8_t nboards;
    uint32_t board_id[MUX_MAX_BOARDS];
};

/* The bench this firmware image drives (config/bench_config.c). */
extern const struct board_layout board_layout_hil12x10;
extern const struct chain_config bench_chain;

#endif
