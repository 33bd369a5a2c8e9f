/* hil-mux firmware core: the MCU side of docs/mcu-protocol.md, independent of the hardware.
 *
 * The core owns the protocol state (retransmission memory, route table, table state, host
 * watchdog) and reaches the hardware only through hal.h. It allocates nothing: every buffer is
 * a fixed member of struct mux, so the RAM a build needs is known at link time. */
#ifndef MUX_H
#define MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define MUX_FW_NAME "hil-mux/2.0"
#define MUX_PROTO "2"
#define MUX_MAX_LINE 256 /* bytes of a line this firmware takes, the newline included (rx=) */
#define MUX_TRIG_LINES 2 /* TRIG OUT and TRIG IN lines */
#define MUX_DEFAULT_SETTLE_US 20u /* route commands settle this long before any TBL CFG */
#define MUX_REPLY_MAX 2048 /* longest reply: STATE? with every board closed */
#define MUX_WDG_MIN_MS 20u
#define MUX_WDG_MAX_MS 60000u

#ifndef MUX_TABLE_ENTRIES
#define MUX_TABLE_ENTRIES 4096u /* routes a table holds */
#endif
#ifndef MUX_TABLE_GROUPS
#define MUX_TABLE_GROUPS 49152u /* (board, col, rowmask) groups shared by all entries */
#endif

/* One board's switch sets as bit masks (bit i = row or column i+1), as STATE? reports them. */
struct sw_state {
    uint16_t wl, bls, slg, slm;
};

enum route_kind { KIND_OPEN = 0, KIND_PUL = 1, KIND_MAC = 2 };

/* A group of a stored route: board by its slot in the chain, column 1..10, row mask. */
struct tgroup {
    uint8_t slot;
    uint8_t col;
    uint16_t mask;
};

struct tentry {
    uint16_t first; /* index of the entry's first group in the pool */
    uint8_t n;      /* groups (one per board at most) */
    uint8_t kind;
};

enum table_state { TBL_IDLE, TBL_RUNNING, TBL_DONE, TBL_FAULT };
enum run_why { WHY_NONE, WHY_SWITCH, WHY_TIMEOUT, WHY_STRAY, WHY_ABORT };
enum run_phase { PH_APPLY, PH_SETTLE, PH_WAIT, PH_TAIL };

/* TBL CFG: how the MCU paces a table (protocol section 4.1), times in microseconds. */
struct pacing {
    bool set;
    uint8_t out, in;
    bool edge; /* wait=edge (else dwell) */
    uint32_t settle, tout, time;
};

/* Bytes of one line as they arrive; over-long lines are cut and remembered as such. */
struct linebuf {
    char buf[MUX_MAX_LINE];
    size_t n;
    bool overflow;
};

struct mux {
    const struct chain_config *cfg;
    uint8_t order[MUX_MAX_BOARDS]; /* slots sorted by board id */
    /* retransmission memory: seq, body and reply of the last executed frame */
    bool have_last;
    int last_seq;
    size_t last_body_len, last_reply_len;
    char last_body[MUX_MAX_LINE];
    char last_reply[MUX_REPLY_MAX + 16];
    /* table */
    struct tentry entries[MUX_TABLE_ENTRIES];
    struct tgroup pool[MUX_TABLE_GROUPS];
    uint32_t len, pos;
    uint32_t pool_used;
    enum table_state state;
    struct pacing pace;
    /* the run (section 4.2): edges on TRIG IN `cfg.in`, TRIG OUT pulses, phase and deadlines */
    uint32_t before, during, after, outs;
    enum run_why why;
    enum run_phase phase;
    bool completed;
    uint64_t settle_until, rise, fall_at, deadline, end;
    /* host watchdog */
    uint32_t wdg_ms, wdg_fed_at, wdg_expired;
    /* switch images (one byte per 8 chain bits) */
    uint8_t out_image[MUX_CHAIN_BYTES];
    uint8_t in_image[MUX_CHAIN_BYTES];
    uint8_t used[MUX_CHAIN_BYTES]; /* chain bits wired to a switch */
};

void mux_init(struct mux *m, const struct chain_config *cfg);

/* Feed one received byte to a line buffer; true when a line (without its '\n') is complete. */
bool linebuf_push(struct linebuf *lb, uint8_t byte);
void linebuf_clear(struct linebuf *lb);

/* Answer one complete line; writes the reply frame (with '\n') to reply (MUX_REPLY_MAX + 16
 * bytes), returns its length. */
size_t mux_line(struct mux *m, const struct linebuf *lb, char *reply);

/* A rising edge on TRIG IN `line` (1..2) at `t_us` (hal_micros time). */
void mux_edge(struct mux *m, unsigned line, uint64_t t_us);

/* Pace a running table up to `now_us`; returns when it next needs a call (UINT64_MAX: no run). */
uint64_t mux_run(struct mux *m, uint64_t now_us);

/* Let the host watchdog act; call often. Returns milliseconds until it next needs a call
 * (UINT32_MAX when disarmed). */
uint32_t mux_poll(struct mux *m);

uint16_t crc16_ccitt(uint16_t crc, const void *data, size_t n);

#endif
