/* Routes: parsing the route text of section 3.1, its canonical form, and text helpers. */
#include "internal.h"

bool next_token(struct span *rest, struct span *tok)
{
    while (rest->n && *rest->p == ' ') {
        rest->p++;
        rest->n--;
    }
    if (!rest->n)
        return false;
    tok->p = rest->p;
    while (rest->n && *rest->p != ' ') {
        rest->p++;
        rest->n--;
    }
    tok->n = (size_t)(rest->p - tok->p);
    return true;
}

bool span_eq(struct span s, const char *lit)
{
    size_t i = 0;
    for (; i < s.n; i++)
        if (lit[i] != s.p[i])
            return false;
    return lit[i] == '\0';
}

bool parse_decimal(struct span s, uint32_t *value)
{
    uint64_t v = 0;
    if (!s.n)
        return false;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        v = v * 10u + (uint64_t)(s.p[i] - '0');
        if (v > UINT32_MAX)
            v = UINT32_MAX; /* saturate: still out of every range */
    }
    *value = (uint32_t)v;
    return true;
}

bool parse_hex3(struct span s, uint16_t *value)
{
    uint16_t v = 0;
    if (s.n != 3)
        return false;
    for (size_t i = 0; i < 3; i++) {
        char c = s.p[i];
        if (c >= '0' && c <= '9')
            v = (uint16_t)(v * 16u + (unsigned)(c - '0'));
        else if (c >= 'A' && c <= 'F')
            v = (uint16_t)(v * 16u + (unsigned)(c - 'A' + 10));
        else
            return false;
    }
    *value = v;
    return true;
}

/* head = text before the first `sep`, tail = after it; false when `sep` is absent. */
bool split_at(struct span s, char sep, struct span *head, struct span *tail)
{
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] == sep) {
            head->p = s.p;
            head->n = i;
            tail->p = s.p + i + 1;
            tail->n = s.n - i - 1;
            return true;
        }
    }
    return false;
}

size_t put_text(char *out, const char *lit)
{
    size_t n = 0;
    while (lit[n]) {
        out[n] = lit[n];
        n++;
    }
    return n;
}

size_t put_uint(char *out, uint32_t v)
{
    char tmp[10];
    size_t n = 0, k = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n)
        out[k++] = tmp[--n];
    return k;
}

size_t put_hex3(char *out, uint16_t v)
{
    static const char digits[] = "0123456789ABCDEF";
    out[0] = digits[(v >> 8) & 0xF];
    out[1] = digits[(v >> 4) & 0xF];
    out[2] = digits[v & 0xF];
    return 3;
}

size_t put_hex4(char *out, uint16_t v)
{
    put_hex3(out, (uint16_t)(v >> 4));
    put_hex3(out + 1, (uint16_t)(v & 0xFFF));
    return 4;
}

static int parse_group(struct span tok, struct proute *r)
{
    struct span b, rest, c, mtext, extra;
    uint32_t board, col;
    uint16_t mask;
    if (!split_at(tok, ':', &b, &rest) || !split_at(rest, ':', &c, &mtext) ||
        split_at(mtext, ':', &extra, &rest))
        return E_SYNTAX;
    if (!parse_hex3(mtext, &mask) || !parse_decimal(b, &board) || !parse_decimal(c, &col))
        return E_SYNTAX;
    if (r->n >= MUX_PARSE_GROUPS)
        return E_SYNTAX;
    r->board[r->n] = board;
    r->col[r->n] = col > 255u ? 255u : (uint8_t)col;
    r->mask[r->n] = mask;
    r->n++;
    return 0;
}

/* Syntax of `OPEN`, `SEL b r c`, `PUL|MAC b:c:mmm ...` (codes 1 and 2, 3 for a SEL row). */
int route_parse(struct span text, struct proute *r)
{
    struct span rest = text, kind, tok, args[3];
    size_t nargs = 0;
    r->n = 0;
    if (!next_token(&rest, &kind))
        return E_SYNTAX;
    if (span_eq(kind, "PUL") || span_eq(kind, "MAC")) {
        r->kind = span_eq(kind, "PUL") ? KIND_PUL : KIND_MAC;
        while (next_token(&rest, &tok)) {
            int err = parse_group(tok, r);
            if (err)
                return err;
        }
        return r->n ? 0 : E_SYNTAX;
    }
    while (next_token(&rest, &tok))
        if (nargs++ < 3)
            args[nargs - 1] = tok;
    if (span_eq(kind, "OPEN")) {
        r->kind = KIND_OPEN;
        return nargs ? E_SYNTAX : 0;
    }
    if (span_eq(kind, "SEL")) {
        uint32_t v[3];
        if (nargs != 3)
            return E_SYNTAX;
        for (size_t i = 0; i < 3; i++)
            if (!parse_decimal(args[i], &v[i]))
                return E_SYNTAX;
        if (v[1] < 1 || v[1] > MUX_ROWS)
            return E_RANGE;
        r->kind = KIND_PUL;
        r->board[0] = v[0];
        r->col[0] = v[2] > 255u ? 255u : (uint8_t)v[2];
        r->mask[0] = (uint16_t)(1u << (v[1] - 1));
        r->n = 1;
        return 0;
    }
    return E_UNKNOWN;
}

int route_check(struct proute *r)
{
    for (uint16_t i = 0; i < r->n; i++)
        for (uint16_t j = 0; j < i; j++)
            if (r->board[i] == r->board[j])
                return E_CONFLICT;
    for (uint16_t i = 0; i < r->n; i++)
        if (r->col[i] < 1 || r->col[i] > MUX_COLS || r->mask[i] == 0 || r->mask[i] > 0xFFF)
            return E_RANGE;
    return 0;
}

static int slot_of(const struct mux *m, uint32_t board)
{
    for (int s = 0; s < m->cfg->nboards; s++)
        if (m->cfg->board_id[s] == board)
            return s;
    return -1;
}

/* Boards to chain slots, groups sorted by board id (code 4 for an unknown board). */
int route_resolve(const struct mux *m, const struct proute *r, struct tgroup *out)
{
    if (r->n > m->cfg->nboards) /* groups are on distinct boards: some board is unknown */
        return E_BOARD;
    for (uint16_t i = 0; i < r->n; i++) {
        int slot = slot_of(m, r->board[i]);
        uint16_t k = i;
        if (slot < 0)
            return E_BOARD;
        while (k && m->cfg->board_id[out[k - 1].slot] > r->board[i]) {
            out[k] = out[k - 1];
            k--;
        }
        out[k].slot = (uint8_t)slot;
        out[k].col = r->col[i];
        out[k].mask = r->mask[i];
    }
    return 0;
}

size_t route_text(const struct mux *m, uint8_t kind, const struct tgroup *g, uint8_t n, char *out)
{
    size_t k;
    if (kind == KIND_OPEN)
        return put_text(out, "OPEN");
    k = put_text(out, kind == KIND_PUL ? "PUL" : "MAC");
    for (uint8_t i = 0; i < n; i++) {
        out[k++] = ' ';
        k += put_uint(out + k, m->cfg->board_id[g[i].slot]);
        out[k++] = ':';
        k += put_uint(out + k, g[i].col);
        out[k++] = ':';
        k += put_hex3(out + k, g[i].mask);
    }
    return k;
}
