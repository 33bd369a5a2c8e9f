/* Simulated switch hardware for the host build.
 *
 * The physical state of every switch is one byte (1 = closed) in a switch file that the
 * emulated bench maps too, so a pulse from the emulated generator reaches exactly the cells
 * whose switches this firmware closed. Per board, in chain order: WL of columns 1..10, BL of
 * rows 1..12 to the source bus, SL of columns 1..10 to ground, SL of columns 1..10 to the
 * measure bus (42 bytes); the same 42 bytes per board follow for every board, then a second
 * block of the same shape marks switches that are stuck open (a fault the bench injects).
 *
 * The simulated 74HC595 chain decodes the shifted image through the same board layout table
 * the core encodes it with; the 74HC165 read-back encodes the physical state back, so what
 * the core reads is the switches, not its own command. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hal.h"
#include "hal_host.h"

#include <stdbool.h>

#define LINES (3 * MUX_COLS + MUX_ROWS) /* switches per board */

static const struct chain_config *cfg;
static uint8_t *closed, *stuck; /* [board][LINES] each */
static bool bench_time;          /* time is the emulated bench's, set by hal_host_set_time() */
static uint64_t now_us;          /* ... and this is it */
static char outbox[16384];       /* what the hardware did, for the bench: one line per action */
static size_t outbox_n;

/* Bit offset of switch `line` of a board (order: WL, BLS, SLG, SLM) within its block. */
static uint8_t offset(unsigned line)
{
    const struct board_layout *l = cfg->layout;
    if (line < MUX_COLS)
        return l->wl[line];
    if (line < MUX_COLS + MUX_ROWS)
        return l->bls[line - MUX_COLS];
    if (line < 2 * MUX_COLS + MUX_ROWS)
        return l->slg[line - MUX_COLS - MUX_ROWS];
    return l->slm[line - 2 * MUX_COLS - MUX_ROWS];
}

static void report(const char *fmt, unsigned a, uint64_t t, unsigned b)
{
    int n = snprintf(outbox + outbox_n, sizeof outbox - outbox_n, fmt, a, (unsigned long long)t,
                     b);
    if (n > 0 && (size_t)n < sizeof outbox - outbox_n)
        outbox_n += (size_t)n;
}

void hal_host_init(const struct chain_config *chain, const char *shm, bool on_bench_time)
{
    size_t size = (size_t)chain->nboards * LINES * 2;
    cfg = chain;
    bench_time = on_bench_time;
    if (shm) {
        int fd = open(shm, O_RDWR);
        void *map;
        if (fd < 0 || ftruncate(fd, (off_t)size)) {
            perror("hil-mux-host: switch file");
            exit(1);
        }
        map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            perror("hil-mux-host: mmap");
            exit(1);
        }
        close(fd);
        closed = map;
    } else {
        closed = calloc(size, 1);
        if (!closed)
            exit(1);
    }
    stuck = closed + (size_t)chain->nboards * LINES;
}

/* On bench time the write and the read-back take READ_BACK_US together, the switches moving
 * in the middle, as the emulated MCU models them. */
#define READ_BACK_US 5u

void hal_switches_write(const uint8_t *image, size_t nbytes)
{
    (void)nbytes;
    if (bench_time) {
        now_us += READ_BACK_US / 2;
        report("S %u %llu %u\n", 0, now_us, 0);
    }
    for (unsigned b = 0; b < cfg->nboards; b++) {
        for (unsigned line = 0; line < LINES; line++) {
            unsigned bit = b * cfg->layout->bits + offset(line);
            unsigned on = image[bit / 8] >> (bit % 8) & 1u;
            closed[b * LINES + line] = (uint8_t)(on && !stuck[b * LINES + line]);
        }
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void hal_wait_us(uint32_t us)
{
    struct timespec t = {us / 1000000u, (long)(us % 1000000u) * 1000};
    if (bench_time)
        now_us += us;
    else
        nanosleep(&t, NULL);
}

uint64_t hal_micros(void)
{
    struct timespec t;
    if (bench_time)
        return now_us;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

void hal_host_set_time(uint64_t t_us)
{
    if (t_us > now_us)
        now_us = t_us;
}

size_t hal_host_take_report(char *out, size_t cap)
{
    size_t n = outbox_n < cap ? outbox_n : cap;
    for (size_t i = 0; i < n; i++)
        out[i] = outbox[i];
    outbox_n = 0;
    return n;
}

void hal_trig_rise(unsigned line, uint32_t width_us)
{
    if (bench_time)
        report("O %u %llu %u\n", line, now_us, width_us);
}

void hal_trig_fall(unsigned line)
{
    (void)line; /* the bench takes the pulse width at the rise */
}

void hal_switches_read(uint8_t *image, size_t nbytes)
{
    if (bench_time)
        now_us += READ_BACK_US - READ_BACK_US / 2;
    for (size_t i = 0; i < nbytes; i++)
        image[i] = 0;
    for (unsigned b = 0; b < cfg->nboards; b++) {
        for (unsigned line = 0; line < LINES; line++) {
            unsigned bit = b * cfg->layout->bits + offset(line);
            if (closed[b * LINES + line])
                image[bit / 8] |= (uint8_t)(1u << (bit % 8));
        }
    }
}

uint32_t hal_millis(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint32_t)((uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u);
}
