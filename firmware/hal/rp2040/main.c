/* RP2040 main loop: TRIG IN edges first, then the run's deadlines, then the host link, then the
 * watchdog. The interrupt only timestamps edges; the table steps here, between lines, so a step
 * never races a command that is reading or changing the same state. */
#include "hal.h"
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
        unsigned in;
        uint64_t t;
        while (hal_rp2040_take_edge(&in, &t))
            mux_edge(&mcu, in, t);
        mux_run(&mcu, hal_micros());
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
