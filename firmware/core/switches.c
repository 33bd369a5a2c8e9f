/* Switches: route -> shift-register image through the configuration table, and the read-back
 * comparison that decides whether a route may be used. */
#include "hal.h"
#include "internal.h"

static size_t image_bytes(const struct mux *m)
{
    return (size_t)m->cfg->nboards * m->cfg->layout->bits / 8u;
}

static void put_bits(uint8_t *image, uint32_t base, const uint8_t *offsets, unsigned count,
                     uint16_t mask)
{
    for (unsigned i = 0; i < count; i++) {
        if (mask >> i & 1u) {
            uint32_t bit = base + offsets[i];
            image[bit / 8u] |= (uint8_t)(1u << (bit % 8u));
        }
    }
}

static uint16_t get_bits(const uint8_t *image, uint32_t base, const uint8_t *offsets,
                         unsigned count)
{
    uint16_t mask = 0;
    for (unsigned i = 0; i < count; i++) {
        uint32_t bit = base + offsets[i];
        if (image[bit / 8u] >> (bit % 8u) & 1u)
            mask |= (uint16_t)(1u << i);
    }
    return mask;
}

/* The chain image of a route: only the route's boards have bits to set. */
static void encode(struct mux *m, uint8_t kind, const struct tgroup *g, uint8_t n)
{
    const struct board_layout *l = m->cfg->layout;
    for (size_t i = 0; i < image_bytes(m); i++)
        m->out_image[i] = 0;
    for (uint8_t i = 0; i < n; i++) {
        uint32_t base = (uint32_t)g[i].slot * l->bits;
        uint16_t col = (uint16_t)(1u << (g[i].col - 1));
        put_bits(m->out_image, base, l->wl, MUX_COLS, col);
        put_bits(m->out_image, base, l->bls, MUX_ROWS, g[i].mask);
        put_bits(m->out_image, base, kind == KIND_PUL ? l->slg : l->slm, MUX_COLS, col);
    }
}

/* Chain bits that carry a switch (the others are unused register outputs and inputs). */
void switches_init(struct mux *m)
{
    static const uint16_t all = 0xFFF;
    const struct board_layout *l = m->cfg->layout;
    for (size_t i = 0; i < image_bytes(m); i++)
        m->used[i] = 0;
    for (uint8_t s = 0; s < m->cfg->nboards; s++) {
        uint32_t base = (uint32_t)s * l->bits;
        put_bits(m->used, base, l->wl, MUX_COLS, all);
        put_bits(m->used, base, l->bls, MUX_ROWS, all);
        put_bits(m->used, base, l->slg, MUX_COLS, all);
        put_bits(m->used, base, l->slm, MUX_COLS, all);
    }
}

/* The physical switch state, read back from the 74HC165 chain. */
static void read_back(struct mux *m, struct sw_state *states)
{
    const struct board_layout *l = m->cfg->layout;
    hal_switches_read(m->in_image, image_bytes(m));
    for (uint8_t s = 0; s < m->cfg->nboards; s++) {
        uint32_t base = (uint32_t)s * l->bits;
        states[s].wl = get_bits(m->in_image, base, l->wl, MUX_COLS);
        states[s].bls = get_bits(m->in_image, base, l->bls, MUX_ROWS);
        states[s].slg = get_bits(m->in_image, base, l->slg, MUX_COLS);
        states[s].slm = get_bits(m->in_image, base, l->slm, MUX_COLS);
    }
}

void switches_open(struct mux *m)
{
    for (size_t i = 0; i < image_bytes(m); i++)
        m->out_image[i] = 0;
    hal_switches_write(m->out_image, image_bytes(m));
}

bool switches_any_closed(const struct mux *m)
{
    for (size_t i = 0; i < image_bytes(m); i++)
        if (m->out_image[i])
            return true;
    return false;
}

/* Set a route (every other switch open) and compare the read-back; on a mismatch open
 * everything and answer E_SWITCH. Settling is the caller's: it starts once this returns. */
int switches_apply(struct mux *m, uint8_t kind, const struct tgroup *g, uint8_t n)
{
    encode(m, kind, g, n);
    hal_switches_write(m->out_image, image_bytes(m));
    hal_switches_read(m->in_image, image_bytes(m));
    for (size_t i = 0; i < image_bytes(m); i++) {
        if ((m->in_image[i] & m->used[i]) != m->out_image[i]) {
            switches_open(m);
            return E_SWITCH;
        }
    }
    return 0;
}

/* STATE? data: `<board>:<WL>:<BLS>:<SLG>:<SLM>` per board with a closed switch, by board id. */
size_t switches_report(struct mux *m, char *out)
{
    struct sw_state got[MUX_MAX_BOARDS];
    size_t k = 0;
    read_back(m, got);
    for (uint8_t i = 0; i < m->cfg->nboards; i++) {
        uint8_t s = m->order[i];
        const struct sw_state *st = &got[s];
        if (!(st->wl | st->bls | st->slg | st->slm))
            continue;
        if (k)
            out[k++] = ' ';
        k += put_uint(out + k, m->cfg->board_id[s]);
        out[k++] = ':';
        k += put_hex3(out + k, st->wl);
        out[k++] = ':';
        k += put_hex3(out + k, st->bls);
        out[k++] = ':';
        k += put_hex3(out + k, st->slg);
        out[k++] = ':';
        k += put_hex3(out + k, st->slm);
    }
    return k;
}
