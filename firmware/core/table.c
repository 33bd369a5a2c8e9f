/* The route table: TBL SET / TBL SCAN storage, stepping, canonical text and CRC.
 *
 * Entries keep their groups in one pool, in entry order (entry i+1's groups follow entry i's),
 * so the table costs 4 bytes per entry plus 4 per group and a frame that overwrites entries in
 * the middle moves the pool's tail once. A frame is parsed twice: the first pass validates and
 * counts (a refused frame changes nothing), the second stores. */
#include "internal.h"

_Static_assert(MUX_TABLE_GROUPS <= 65536u, "entry.first is 16 bits");

static struct proute scratch; /* one route being parsed */

struct walk {
    bool store;
    uint32_t entries, groups; /* counted by the first pass */
    uint32_t at, gat;         /* where the second pass writes */
    bool unknown_board;
};

static int emit(struct mux *m, struct walk *w)
{
    struct tgroup g[MUX_MAX_BOARDS];
    int err = route_check(&scratch);
    if (err)
        return err;
    if (!w->store) {
        w->entries++;
        w->groups += scratch.n;
        if (route_resolve(m, &scratch, g))
            w->unknown_board = true;
        return 0;
    }
    route_resolve(m, &scratch, g);
    m->entries[w->at].first = (uint16_t)w->gat;
    m->entries[w->at].n = (uint8_t)scratch.n;
    m->entries[w->at].kind = scratch.kind;
    for (uint16_t i = 0; i < scratch.n; i++)
        m->pool[w->gat + i] = g[i];
    w->at++;
    w->gat += scratch.n;
    return 0;
}

/* Next token of a spec split on single spaces (empty tokens possible, as the text has them). */
static bool next_field(struct span *rest, struct span *tok)
{
    struct span tail;
    if (!rest->p)
        return false;
    if (split_at(*rest, ' ', tok, &tail)) {
        *rest = tail;
    } else {
        *tok = *rest;
        rest->p = NULL;
        rest->n = 0;
    }
    return true;
}

/* One scan spec `<PUL|MAC> <c1>-<c2> <board>:<mmm> ...`: one entry per column. */
static int scan_spec(struct mux *m, struct walk *w, struct span spec)
{
    struct span rest = spec, kind, range, tok, c1, c2, b, mm;
    uint32_t first, last, board;
    uint16_t mask;
    if (!next_field(&rest, &kind) || !next_field(&rest, &range))
        return E_SYNTAX;
    if (!split_at(range, '-', &c1, &c2) || !parse_decimal(c1, &first) ||
        !parse_decimal(c2, &last))
        return E_SYNTAX;
    scratch.n = 0;
    while (next_field(&rest, &tok)) {
        if (!split_at(tok, ':', &b, &mm) || !parse_decimal(b, &board) || !parse_hex3(mm, &mask) ||
            scratch.n >= MUX_PARSE_GROUPS)
            return E_SYNTAX;
        scratch.board[scratch.n] = board;
        scratch.mask[scratch.n] = mask;
        scratch.n++;
    }
    if (!span_eq(kind, "PUL") && !span_eq(kind, "MAC"))
        return E_UNKNOWN;
    if (!scratch.n || first < 1 || first > last || last > MUX_COLS)
        return E_SYNTAX;
    scratch.kind = span_eq(kind, "PUL") ? KIND_PUL : KIND_MAC;
    for (uint32_t c = first; c <= last; c++) {
        int err;
        for (uint16_t i = 0; i < scratch.n; i++)
            scratch.col[i] = (uint8_t)c;
        err = emit(m, w);
        if (err)
            return err;
    }
    return 0;
}

/* Every route of a SET or SCAN frame, in order, each emitted to `w`. */
static int walk(struct mux *m, bool scan, uint32_t start, struct span rest, struct walk *w)
{
    struct span part, tail;
    uint32_t count = 0;
    for (int n = 0;; n++) {
        bool more = split_at(rest, ';', &part, &tail);
        uint32_t before = w->store ? w->at : w->entries;
        int err;
        if (!more)
            part = rest;
        if (!scan) {
            err = route_parse(part, &scratch);
            err = err ? err : emit(m, w);
        } else {
            if (n) { /* each further spec starts with its index, which must follow on */
                struct span at, spec;
                uint32_t index;
                if (!split_at(part, ' ', &at, &spec))
                    at = part, spec = (struct span){part.p + part.n, 0};
                if (!parse_decimal(at, &index) || (uint64_t)index != (uint64_t)start + count)
                    return E_SYNTAX;
                part = spec;
            }
            err = scan_spec(m, w, part);
        }
        if (err)
            return err;
        count += (w->store ? w->at : w->entries) - before;
        if (!more)
            return 0;
        rest = tail;
    }
}

int table_store(struct mux *m, struct span verb, struct span args)
{
    struct span start_text, rest;
    uint32_t start, replaced, old_groups = 0, end;
    struct walk w = {0};
    bool scan = span_eq(verb, "SCAN");
    int err;
    if (!split_at(args, ' ', &start_text, &rest) || !parse_decimal(start_text, &start))
        return E_SYNTAX;
    err = walk(m, scan, start, rest, &w);
    if (err)
        return err;
    if (w.unknown_board)
        return E_BOARD;
    if (start > m->len || (uint64_t)start + w.entries > MUX_TABLE_ENTRIES)
        return E_TABLE;
    replaced = m->len - start < w.entries ? m->len - start : w.entries;
    for (uint32_t i = start; i < start + replaced; i++)
        old_groups += m->entries[i].n;
    if (m->pool_used - old_groups + w.groups > MUX_TABLE_GROUPS)
        return E_TABLE;
    /* make room: the groups of the entries after the replaced ones move to their new place */
    {
        uint32_t from = start < m->len ? m->entries[start].first : m->pool_used;
        uint32_t tail_from = from + old_groups, tail_to = from + w.groups;
        uint32_t tail_n = m->pool_used - tail_from;
        if (tail_to < tail_from)
            for (uint32_t i = 0; i < tail_n; i++)
                m->pool[tail_to + i] = m->pool[tail_from + i];
        else
            for (uint32_t i = tail_n; i-- > 0;)
                m->pool[tail_to + i] = m->pool[tail_from + i];
        for (uint32_t i = start + replaced; i < m->len; i++)
            m->entries[i].first = (uint16_t)(m->entries[i].first + tail_to - tail_from);
        m->pool_used = m->pool_used - old_groups + w.groups;
        w.store = true;
        w.at = start;
        w.gat = from;
    }
    walk(m, scan, start, rest, &w); /* validated above: cannot fail */
    end = start + w.entries;
    if (end > m->len)
        m->len = end;
    return 0;
}

size_t table_entry_text(const struct mux *m, uint32_t i, char *out)
{
    const struct tentry *e = &m->entries[i];
    return route_text(m, e->kind, &m->pool[e->first], e->n, out);
}

uint16_t table_crc(const struct mux *m)
{
    char text[MUX_MAX_BOARDS * 20 + 8];
    uint16_t crc = 0xFFFF;
    for (uint32_t i = 0; i < m->len; i++) {
        if (i)
            crc = crc16_ccitt(crc, "\n", 1);
        crc = crc16_ccitt(crc, text, table_entry_text(m, i, text));
    }
    return crc;
}
