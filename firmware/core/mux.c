/* Frames and commands: line framing, CRC, sequence numbers and retransmission memory, the
 * command set of docs/mcu-protocol.md section 4, and the host watchdog (section 4.3). */
#include "hal.h"
#include "internal.h"

static const char *const err_text[] = {"", "syntax", "unknown", "range", "board",
                                       "conflict", "table", "switch", "busy"};

static uint16_t crc_table[256];

uint16_t crc16_ccitt(uint16_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n--)
        crc = (uint16_t)(crc << 8) ^ crc_table[(uint8_t)(crc >> 8) ^ *p++];
    return crc;
}

static void crc_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint16_t c = (uint16_t)(i << 8);
        for (int b = 0; b < 8; b++)
            c = (uint16_t)(c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1);
        crc_table[i] = c;
    }
}

void mux_init(struct mux *m, const struct chain_config *cfg)
{
    crc_init();
    m->cfg = cfg;
    for (uint8_t i = 0; i < cfg->nboards; i++) { /* slots sorted by board id, for reports */
        uint8_t k = i;
        while (k && cfg->board_id[m->order[k - 1]] > cfg->board_id[i]) {
            m->order[k] = m->order[k - 1];
            k--;
        }
        m->order[k] = i;
    }
    m->have_last = false;
    m->len = m->pos = m->pool_used = 0;
    m->state = TBL_IDLE;
    m->pace.set = false;
    m->before = m->during = m->after = m->outs = 0;
    m->why = WHY_NONE;
    m->wdg_ms = m->wdg_expired = 0;
    m->wdg_fed_at = hal_millis();
    switches_init(m);
    switches_open(m);
}

void linebuf_clear(struct linebuf *lb)
{
    lb->n = 0;
    lb->overflow = false;
}

bool linebuf_push(struct linebuf *lb, uint8_t byte)
{
    if (byte == '\n')
        return true;
    if (lb->n < MUX_MAX_LINE - 1)
        lb->buf[lb->n++] = (char)byte;
    else
        lb->overflow = true; /* the line is longer than the limit: keep its head only */
    return false;
}

/* ---- replies ------------------------------------------------------------------------------ */

static size_t frame_reply(char *out, struct span seq, const char *text, size_t text_len)
{
    size_t k = 0;
    uint16_t crc;
    for (size_t i = 0; i < seq.n; i++)
        out[k++] = seq.p[i];
    out[k++] = ' ';
    for (size_t i = 0; i < text_len; i++)
        out[k++] = text[i];
    crc = crc16_ccitt(0xFFFF, out, k);
    out[k++] = ' ';
    out[k++] = '*';
    k += put_hex4(out + k, crc);
    out[k++] = '\n';
    return k;
}

static bool is_digits(struct span s)
{
    for (size_t i = 0; i < s.n; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
    return s.n > 0;
}

/* The seq a NAK carries: the frame's own when it reads as one, else `-`. */
static struct span nak_seq(const char *line, size_t n)
{
    struct span head = {line, 0};
    uint32_t v;
    while (head.n < n && line[head.n] != ' ')
        head.n++;
    if (head.n == n || head.n > 3 || !parse_decimal(head, &v) || v > 255)
        return (struct span){"-", 1};
    return head;
}

static size_t nak(char *out, const char *line, size_t n, const char *reason)
{
    char text[12];
    size_t k = put_text(text, "NAK ");
    k += put_text(text + k, reason);
    return frame_reply(out, nak_seq(line, n), text, k);
}

/* ---- commands ------------------------------------------------------------------------------ */

/* Words of the command, joined by single spaces (the text as `str.split()` sees it). */
static size_t normalise(struct span text, char *out)
{
    struct span rest = text, tok;
    size_t k = 0;
    while (next_token(&rest, &tok)) {
        if (k)
            out[k++] = ' ';
        for (size_t i = 0; i < tok.n; i++)
            out[k++] = tok.p[i];
    }
    return k;
}

static size_t count_words(struct span s)
{
    struct span tok;
    size_t n = 0;
    while (next_token(&s, &tok))
        n++;
    return n;
}

static struct proute route_scratch;

static int route_command(struct mux *m, struct span text)
{
    struct tgroup g[MUX_MAX_BOARDS];
    int err = route_parse(text, &route_scratch);
    err = err ? err : route_check(&route_scratch);
    err = err ? err : route_resolve(m, &route_scratch, g);
    err = err ? err : switches_apply(m, route_scratch.kind, g, (uint8_t)route_scratch.n);
    if (!err) /* the reply goes out once the route has settled */
        hal_wait_us(m->pace.set ? m->pace.settle : MUX_DEFAULT_SETTLE_US);
    return err;
}

/* While a table runs only these are executed (the rest: ERR 8 busy). */
static bool allowed_while_running(struct span cmd, struct span rest)
{
    struct span sub = {"", 0};
    next_token(&rest, &sub);
    return span_eq(cmd, "IDN?") || span_eq(cmd, "STATE?") || span_eq(cmd, "OPEN") ||
           span_eq(cmd, "WDG?") ||
           (span_eq(cmd, "TBL") && (span_eq(sub, "STAT") || span_eq(sub, "CFG?")));
}

static size_t put_field(char *out, const char *key, uint32_t value)
{
    size_t k = put_text(out, key);
    return k + put_uint(out + k, value);
}

static const char *const table_subs[] = {"CLR", "SET", "SCAN", "GET", "CRC",
                                         "CFG", "CFG?", "RUN", "STAT"};

static int table_command(struct mux *m, struct span sub, struct span args, char *data, size_t *n)
{
    uint32_t i;
    size_t nargs = count_words(args);
    if (span_eq(sub, "CLR") && !nargs) {
        m->len = m->pos = m->pool_used = 0;
        m->state = TBL_IDLE;
        m->before = m->during = m->after = m->outs = 0;
        m->why = WHY_NONE;
        return 0;
    }
    if ((span_eq(sub, "SET") || span_eq(sub, "SCAN")) && nargs)
        return table_store(m, sub, args);
    if (span_eq(sub, "GET") && nargs == 1) {
        if (!parse_decimal(args, &i))
            return E_SYNTAX;
        if (i >= m->len)
            return E_TABLE;
        *n = table_entry_text(m, i, data);
        return 0;
    }
    if (span_eq(sub, "CRC") && !nargs) {
        size_t k = put_field(data, "len=", m->len);
        k += put_text(data + k, " crc=");
        *n = k + put_hex4(data + k, table_crc(m));
        return 0;
    }
    if (span_eq(sub, "CFG") && nargs)
        return pacing_parse(args, &m->pace);
    if (span_eq(sub, "CFG?") && !nargs) {
        static const struct pacing none = {false, 0, 0, false, 0, 0, 0};
        *n = pacing_text(m->pace.set ? &m->pace : &none, data);
        return 0;
    }
    if (span_eq(sub, "RUN") && !nargs) {
        if (!m->len || !m->pace.set)
            return E_TABLE;
        run_start(m);
        return 0;
    }
    if (span_eq(sub, "STAT") && !nargs) {
        *n = run_status(m, data);
        return 0;
    }
    for (size_t k = 0; k < sizeof table_subs / sizeof table_subs[0]; k++)
        if (span_eq(sub, table_subs[k]))
            return E_SYNTAX; /* a sub-command of this version with the wrong arguments */
    return E_UNKNOWN;        /* version 1's TBL ARM, or any other sub-command it lacks */
}

static int watchdog_command(struct mux *m, struct span arg)
{
    uint32_t ms;
    if (!parse_decimal(arg, &ms))
        return E_SYNTAX;
    if (ms && (ms < MUX_WDG_MIN_MS || ms > MUX_WDG_MAX_MS))
        return E_RANGE;
    m->wdg_ms = ms;
    m->wdg_fed_at = hal_millis();
    return 0;
}

/* Execute one command; its reply data go to `data` (length in *n); returns 0 or an ERR code. */
static int execute(struct mux *m, struct span text, char *data, size_t *n)
{
    struct span rest = text, cmd = {"", 0}, sub, args;
    size_t nwords = count_words(text);
    *n = 0;
    next_token(&rest, &cmd);
    if (m->state == TBL_RUNNING && !allowed_while_running(cmd, rest))
        return E_BUSY;
    if (span_eq(cmd, "IDN?") && nwords == 1) {
        size_t k = put_text(data, "fw=" MUX_FW_NAME " proto=" MUX_PROTO " boards=");
        for (uint8_t i = 0; i < m->cfg->nboards; i++) {
            if (i)
                data[k++] = ',';
            k += put_uint(data + k, m->cfg->board_id[m->order[i]]);
        }
        k += put_field(data + k, " table=", MUX_TABLE_ENTRIES);
        k += put_field(data + k, " rx=", MUX_MAX_LINE);
        k += put_field(data + k, " trig=", MUX_TRIG_LINES);
        *n = k + put_field(data + k, "/", MUX_TRIG_LINES);
        return 0;
    }
    if (span_eq(cmd, "STATE?") && nwords == 1) {
        *n = switches_report(m, data);
        return 0;
    }
    if (span_eq(cmd, "OPEN") && nwords == 1) {
        if (m->state == TBL_RUNNING)
            run_stop(m, TBL_FAULT, WHY_ABORT);
        switches_open(m);
        return 0;
    }
    if (span_eq(cmd, "SEL") || span_eq(cmd, "PUL") || span_eq(cmd, "MAC"))
        return route_command(m, text);
    if (span_eq(cmd, "TBL") && nwords >= 2) {
        next_token(&rest, &sub);
        args = rest;
        if (args.n && args.p[0] == ' ') { /* normalised text: one space before the arguments */
            args.p++;
            args.n--;
        }
        return table_command(m, sub, args, data, n);
    }
    if (span_eq(cmd, "WDG") && nwords == 2) {
        next_token(&rest, &args);
        return watchdog_command(m, args);
    }
    if (span_eq(cmd, "WDG?") && nwords == 1) {
        size_t k = put_field(data, "ms=", m->wdg_ms);
        *n = k + put_field(data + k, " expired=", m->wdg_expired);
        return 0;
    }
    if (span_eq(cmd, "IDN?") || span_eq(cmd, "STATE?") || span_eq(cmd, "OPEN") ||
        span_eq(cmd, "TBL") || span_eq(cmd, "WDG") ||
        span_eq(cmd, "WDG?"))
        return E_SYNTAX;
    return E_UNKNOWN;
}

/* ---- frames -------------------------------------------------------------------------------- */

static bool is_hex_upper(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

size_t mux_line(struct mux *m, const struct linebuf *lb, char *reply)
{
    static char norm[MUX_MAX_LINE], data[MUX_REPLY_MAX];
    const char *line = lb->buf;
    size_t n = lb->n, sp = 0, dn;
    uint32_t seq, crc = 0;
    struct span seq_text, text;
    int err;
    if (lb->overflow)
        return nak(reply, line, n, "LONG");
    while (sp < n && line[sp] == '\r')
        sp++;
    if (sp == n)
        return 0; /* an empty line ends a partial one and is not answered */
    sp = 0;
    if (n && line[n - 1] == '\r')
        n--;
    while (sp < n && line[sp] != ' ')
        sp++;
    seq_text = (struct span){line, sp};
    /* `<seq> <text> *XXXX`: seq 1-3 digits or `-`, text non-empty printable ASCII */
    if (sp == n || !(span_eq(seq_text, "-") || (sp <= 3 && is_digits(seq_text))) ||
        n < sp + 8 || line[n - 6] != ' ' || line[n - 5] != '*')
        return nak(reply, line, n, "FRAME");
    for (size_t i = sp + 1; i < n - 6; i++)
        if (line[i] < 0x20 || line[i] > 0x7E)
            return nak(reply, line, n, "FRAME");
    for (size_t i = n - 4; i < n; i++) {
        if (!is_hex_upper(line[i]))
            return nak(reply, line, n, "FRAME");
        crc = crc * 16u + (uint32_t)(line[i] <= '9' ? line[i] - '0' : line[i] - 'A' + 10);
    }
    if (crc16_ccitt(0xFFFF, line, n - 6) != crc)
        return nak(reply, line, n, "CRC");
    m->wdg_fed_at = hal_millis(); /* every frame that arrives intact feeds the watchdog */
    if (!parse_decimal(seq_text, &seq) || seq > 255)
        return nak(reply, line, n, "FRAME");
    text = (struct span){line + sp + 1, n - 6 - sp - 1};
    if (seq && m->have_last && m->last_seq == (int)seq && m->last_body_len == text.n) {
        size_t i = 0;
        while (i < text.n && m->last_body[i] == text.p[i])
            i++;
        if (i == text.n) { /* a retransmission: the same answer, not executed again */
            for (i = 0; i < m->last_reply_len; i++)
                reply[i] = m->last_reply[i];
            return m->last_reply_len;
        }
    }
    err = execute(m, (struct span){norm, normalise(text, norm)}, data, &dn);
    if (err) {
        size_t k = put_text(data, "ERR ");
        k += put_uint(data + k, (uint32_t)err);
        data[k++] = ' ';
        dn = k + put_text(data + k, err_text[err]);
    } else {
        size_t k = dn;
        if (k) { /* "OK <data>" */
            for (size_t i = k; i-- > 0;)
                data[i + 3] = data[i];
            data[2] = ' ';
            dn = k + 3;
        } else {
            dn = 2;
        }
        data[0] = 'O';
        data[1] = 'K';
    }
    m->last_reply_len = frame_reply(reply, (struct span){norm, put_uint(norm, seq)}, data, dn);
    for (size_t i = 0; i < m->last_reply_len; i++)
        m->last_reply[i] = reply[i];
    for (size_t i = 0; i < text.n; i++)
        m->last_body[i] = text.p[i];
    m->last_body_len = text.n;
    m->last_seq = (int)seq;
    m->have_last = true;
    return m->last_reply_len;
}

/* ---- watchdog ---------------------------------------------------------------------------- */

uint32_t mux_poll(struct mux *m)
{
    uint32_t now = hal_millis(), elapsed = now - m->wdg_fed_at;
    if (!m->wdg_ms)
        return UINT32_MAX;
    if (elapsed < m->wdg_ms)
        return m->wdg_ms - elapsed;
    if (m->state == TBL_RUNNING || switches_any_closed(m)) {
        if (m->state == TBL_RUNNING)
            run_stop(m, TBL_FAULT, WHY_ABORT);
        switches_open(m);
        m->wdg_expired++;
    }
    m->wdg_fed_at = now;
    return m->wdg_ms;
}
