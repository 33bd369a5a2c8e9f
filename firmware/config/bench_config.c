/* The lab's wiring. Edit this file (only) for other boards or another chain order. */
#include "config.h"

/* One 12 x 10 board, six 74HC595 (48 bits, QA of the first register = bit 0):
 *   U1 QA..QH, U2 QA..QB  bits  0..9   WL gate of columns 1..10
 *   U2 QC..QH, U3 QA..QF  bits 10..21  BL of rows 1..12 to the source bus
 *   U3 QG..QH, U4 QA..QH  bits 22..31  SL of columns 1..10 to ground
 *   U5 QA..QH, U6 QA..QB  bits 32..41  SL of columns 1..10 to the measure bus
 *   U6 QC..QH             bits 42..47  unused (driven low) */
const struct board_layout board_layout_hil12x10 = {
    .bits = 48,
    .wl = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
    .bls = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21},
    .slg = {22, 23, 24, 25, 26, 27, 28, 29, 30, 31},
    .slm = {32, 33, 34, 35, 36, 37, 38, 39, 40, 41},
};

/* Boards 1..40 in chain order (board 1 nearest the MCU), as the default bench file tiles them. */
const struct chain_config bench_chain = {
    .layout = &board_layout_hil12x10,
    .nboards = 40,
    .board_id = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
                 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
                 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40},
};
