/* RP2040 main loop: TRIG IN edges first (they pace a table), then the host link, then the
 * watchdog. The interrupt only counts edges; the table steps here, between lines, so a step
 * never races a command that is reading or changing the same state. */
#include "hal_rp2040.h"
#include "mux.h"

static struct mux mcu;
static struct linebuf line;
static char reply[MUX_REPLY_MAX + 16];

int main(void)
{
    hal_rp2040_init();
    mux_init(&mcu, &bench_chain); /* shifts an all-open image before the drivers are enabled */
    hal_rp2040_enable_outputs();
    linebuf_clear(&line);
    for (;;) {
        int byte;
        for (uint32_t n = hal_rp2040_take_edges(); n; n--)
            mux_edge(&mcu);
        while ((byte = hal_rp2040_getc()) >= 0) {
            if (linebuf_push(&line, (uint8_t)byte)) {
                hal_rp2040_write(reply, mux_line(&mcu, &line, reply));
                linebuf_clear(&line);
                break; /* look at the trigger between lines */
            }
        }
        mux_poll(&mcu);
    }
}
