/* Table runs (protocol sections 4.1 and 4.2): the MCU paces the instruments.
 *
 * For each entry: set it and read it back, wait `settle` from the matching read-back, raise
 * TRIG OUT `out` for `tout`, then wait for the first rising edge on TRIG IN `in` within `time`
 * (wait=edge) or for a dwell of `time` (wait=dwell), and step no earlier than TRIG OUT's fall.
 * The run is a state machine advanced by mux_run() at the deadlines it returns and by
 * mux_edge(), so the main loop keeps answering the host (TBL STAT, OPEN) while it runs. */
#include "hal.h"
#include "internal.h"

static const char *const why_text[] = {"none", "switch", "timeout", "stray", "abort"};
static const char *const state_text[] = {"idle", "running", "done", "fault"};

static uint64_t later(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

void run_stop(struct mux *m, enum table_state state, enum run_why why)
{
    if (state == TBL_FAULT)
        hal_trig_fall(m->pace.out); /* cut a TRIG OUT pulse short */
    if (state == TBL_FAULT || state == TBL_DONE)
        switches_open(m);
    m->state = state;
    m->why = why;
}

void run_start(struct mux *m)
{
    m->before += m->during + m->after; /* edges so far precede this run */
    m->during = m->after = 0;
    m->outs = 0;
    m->why = WHY_NONE;
    m->pos = 0;
    m->state = TBL_RUNNING;
    m->phase = PH_APPLY;
    mux_run(m, hal_micros());
}

uint64_t mux_run(struct mux *m, uint64_t now)
{
    while (m->state == TBL_RUNNING) {
        const struct tentry *e = &m->entries[m->pos];
        switch (m->phase) {
        case PH_APPLY:
            if (switches_apply(m, e->kind, &m->pool[e->first], e->n)) {
                run_stop(m, TBL_FAULT, WHY_SWITCH); /* switches already opened */
                break;
            }
            m->wdg_fed_at = hal_millis(); /* a table being paced is running */
            now = hal_micros();            /* the read-back takes what it takes */
            m->settle_until = now + m->pace.settle;
            m->completed = false;
            m->phase = PH_SETTLE;
            break;
        case PH_SETTLE:
            if (now < m->settle_until)
                return m->settle_until;
            m->rise = now;
            m->fall_at = now + m->pace.tout;
            m->deadline = now + m->pace.time;
            hal_trig_rise(m->pace.out, m->pace.tout); /* the hardware ends the pulse */
            m->outs++;
            m->phase = PH_WAIT;
            break;
        case PH_WAIT:
            if (m->pace.edge && !m->completed) {
                if (now < m->deadline)
                    return m->deadline;
                run_stop(m, TBL_FAULT, WHY_TIMEOUT);
                break;
            }
            m->end = m->pace.edge ? later(m->end, m->fall_at)
                                 : m->rise + later(m->pace.time, m->pace.tout);
            m->phase = PH_TAIL;
            break;
        case PH_TAIL:
            if (now < m->end)
                return m->end;
            if (++m->pos >= m->len) {
                m->pos = m->len;
                run_stop(m, TBL_DONE, WHY_NONE);
                break;
            }
            m->phase = PH_APPLY;
            break;
        }
    }
    return UINT64_MAX;
}

void mux_edge(struct mux *m, unsigned line, uint64_t t)
{
    if (!m->pace.set || line != m->pace.in)
        return;
    if (m->state == TBL_RUNNING)
        m->during++;
    else if (m->state == TBL_DONE || m->state == TBL_FAULT)
        m->after++;
    else
        m->before++;
    if (m->state != TBL_RUNNING || !m->pace.edge)
        return;
    if (m->phase == PH_WAIT && !m->completed && t >= m->rise) {
        m->completed = true;
        m->end = t; /* the entry completes no earlier than TRIG OUT's fall (PH_WAIT) */
        mux_run(m, t);
    } else { /* an edge while no completion is awaited: the run stops at once */
        run_stop(m, TBL_FAULT, WHY_STRAY);
    }
}

/* `out=<o> in=<i> wait=<edge|dwell> settle=<us> tout=<us> time=<us>`, keys in this order. */
int pacing_parse(struct span args, struct pacing *cfg)
{
    static const char *const keys[] = {"out", "in", "wait", "settle", "tout", "time"};
    struct span rest = args, tok, key, value;
    uint32_t v[6] = {0};
    bool edge = false;
    size_t n = 0;
    while (next_token(&rest, &tok)) {
        if (n >= 6 || !split_at(tok, '=', &key, &value) || !span_eq(key, keys[n]) || !value.n)
            return E_SYNTAX;
        if (n == 2) {
            if (!span_eq(value, "edge") && !span_eq(value, "dwell"))
                return E_SYNTAX;
            edge = span_eq(value, "edge");
        } else if (!parse_decimal(value, &v[n])) {
            return E_SYNTAX;
        }
        n++;
    }
    if (n != 6 || (edge && v[1] == 0))
        return E_SYNTAX;
    if (v[0] < 1 || v[0] > MUX_TRIG_LINES || v[1] > MUX_TRIG_LINES || v[3] > 1000000u ||
        v[4] < 1 || v[4] > 1000u || v[5] < 1 || v[5] > 10000000u)
        return E_RANGE;
    *cfg = (struct pacing){true, (uint8_t)v[0], (uint8_t)v[1], edge, v[3], v[4], v[5]};
    return 0;
}

size_t pacing_text(const struct pacing *cfg, char *out)
{
    size_t k = put_text(out, "out=");
    k += put_uint(out + k, cfg->out);
    k += put_text(out + k, " in=");
    k += put_uint(out + k, cfg->in);
    k += put_text(out + k, cfg->edge ? " wait=edge settle=" : " wait=dwell settle=");
    k += put_uint(out + k, cfg->settle);
    k += put_text(out + k, " tout=");
    k += put_uint(out + k, cfg->tout);
    k += put_text(out + k, " time=");
    return k + put_uint(out + k, cfg->time);
}

size_t run_status(const struct mux *m, char *out)
{
    static const char *const keys[] = {" pos=", " len=", " out=", " before=", " during=",
                                       " after="};
    const uint32_t values[] = {m->pos, m->len, m->outs, m->before, m->during, m->after};
    size_t k = put_text(out, "state=");
    k += put_text(out + k, state_text[m->state]);
    for (size_t i = 0; i < 6; i++) {
        k += put_text(out + k, keys[i]);
        k += put_uint(out + k, values[i]);
    }
    k += put_text(out + k, " why=");
    return k + put_text(out + k, why_text[m->why]);
}
