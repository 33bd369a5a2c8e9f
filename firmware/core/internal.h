/* Declarations shared by the core's modules (not part of the core's interface). */
#ifndef MUX_INTERNAL_H
#define MUX_INTERNAL_H

#include "mux.h"

/* Protocol error codes (docs/mcu-protocol.md section 5). */
enum {
    E_SYNTAX = 1, E_UNKNOWN = 2, E_RANGE = 3, E_BOARD = 4, E_CONFLICT = 5, E_TABLE = 6,
    E_SWITCH = 7, E_BUSY = 8
};

/* A piece of text: not NUL-terminated. */
struct span {
    const char *p;
    size_t n;
};

#define MUX_PARSE_GROUPS 512 /* more groups than a 4096-byte line can name */

/* A route as parsed, before its boards are looked up. */
struct proute {
    uint8_t kind;
    uint16_t n;
    uint32_t board[MUX_PARSE_GROUPS];
    uint8_t col[MUX_PARSE_GROUPS];
    uint16_t mask[MUX_PARSE_GROUPS];
};

/* text helpers (route.c) */
bool next_token(struct span *rest, struct span *tok);
bool span_eq(struct span s, const char *lit);
bool parse_decimal(struct span s, uint32_t *value);
bool parse_hex3(struct span s, uint16_t *value);
bool split_at(struct span s, char sep, struct span *head, struct span *tail);
size_t put_text(char *out, const char *lit);
size_t put_uint(char *out, uint32_t v);
size_t put_hex3(char *out, uint16_t v);
size_t put_hex4(char *out, uint16_t v);

/* routes (route.c) */
int route_parse(struct span text, struct proute *r);
int route_check(struct proute *r); /* conflict, then range: after every group parsed */
int route_resolve(const struct mux *m, const struct proute *r, struct tgroup *out);
size_t route_text(const struct mux *m, uint8_t kind, const struct tgroup *g, uint8_t n,
                  char *out);

/* switches (switches.c) */
void switches_init(struct mux *m);
int switches_apply(struct mux *m, uint8_t kind, const struct tgroup *g, uint8_t n);
void switches_open(struct mux *m);
bool switches_any_closed(const struct mux *m);
size_t switches_report(struct mux *m, char *out);

/* table (table.c) */
int table_store(struct mux *m, struct span verb, struct span args);

/* table runs (run.c) */
void run_start(struct mux *m);
void run_stop(struct mux *m, enum table_state state, enum run_why why);
int pacing_parse(struct span args, struct pacing *cfg);
size_t pacing_text(const struct pacing *cfg, char *out);
size_t run_status(const struct mux *m, char *out);
size_t table_entry_text(const struct mux *m, uint32_t i, char *out);
uint16_t table_crc(const struct mux *m);

#endif
