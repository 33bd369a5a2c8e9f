/* Host build: the firmware core on a PC, its serial link a TCP port on 127.0.0.1 (pyserial's
 * socket://127.0.0.1:PORT reaches it) and its switch hardware simulated (hal_host.c).
 *
 *   hil-mux-host [--port N] [--boards 1,2,...] [--shm FILE] [--bench-fd FD]
 *
 * Prints `listening on 127.0.0.1:PORT` once it accepts connections. Several clients may be
 * connected; each has its own line buffer, all share the one MCU state, as several programs
 * sharing a serial port would.
 *
 * Alone, the firmware runs tables on the host's clock. With --bench-fd it runs on the emulated
 * bench's time instead, which the bench gives it over that descriptor, one line each:
 *   T <us>          time has moved on to <us>: do what is due
 *   E <line> <us>   a rising edge on TRIG IN <line> at <us>
 *   Q               report only
 * and each is answered with what the hardware did meanwhile (hal_host_take_report lines), then
 * `N <next> <now>`: when the firmware next needs time to move on (`-` for never), and its time. */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hal.h"
#include "hal_host.h"
#include "mux.h"

#define MAX_CLIENTS 8
#define NO_DEADLINE UINT64_MAX

static struct mux mcu;
static struct chain_config chain;
static struct linebuf lines[MAX_CLIENTS];
static char reply[MUX_REPLY_MAX + 16];
static char bench_in[256], bench_out[16384 + 64];
static size_t bench_in_n;

static void usage(const char *why)
{
    fprintf(stderr, "hil-mux-host: %s\nusage: hil-mux-host [--port N] [--boards 1,2,...] "
                    "[--shm FILE] [--bench-fd FD]\n", why);
    exit(2);
}

static void parse_boards(const char *text)
{
    char *end;
    chain.nboards = 0;
    while (*text) {
        unsigned long id = strtoul(text, &end, 10);
        if (end == text || chain.nboards >= MUX_MAX_BOARDS || id > UINT32_MAX)
            usage("--boards: comma-separated board ids, at most 64");
        chain.board_id[chain.nboards++] = (uint32_t)id;
        text = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            usage("--boards: comma-separated board ids");
    }
}

static int listen_on(int port)
{
    struct sockaddr_in addr = {0};
    socklen_t len = sizeof addr;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 8) ||
        getsockname(fd, (struct sockaddr *)&addr, &len)) {
        perror("hil-mux-host: listen");
        exit(1);
    }
    printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return; /* the client went away; its next read sees it */
        p += k;
        n -= (size_t)k;
    }
}

/* One read(): the bytes it got (none when a signal interrupted it), or -1 when the peer hung
 * up or the socket failed. */
static ssize_t read_some(int fd, void *buf, size_t size)
{
    ssize_t n = read(fd, buf, size);
    if (n < 0 && errno == EINTR)
        return 0;
    return n > 0 ? n : -1;
}

/* Bytes from a client: every complete line is answered at once. False when it hung up. */
static bool serve_client(int fd, struct linebuf *lb, bool bench_time)
{
    uint8_t buf[4096];
    ssize_t n = read_some(fd, buf, sizeof buf);
    if (n < 0)
        return false;
    for (ssize_t i = 0; i < n; i++) {
        if (linebuf_push(lb, buf[i])) {
            if (!bench_time) /* the run moves on before the next command is looked at */
                mux_run(&mcu, hal_micros());
            send_all(fd, reply, mux_line(&mcu, lb, reply));
            linebuf_clear(lb);
        }
    }
    return true;
}

/* One line from the bench (see the top of this file), answered. */
static void bench_command(int fd, const char *line)
{
    unsigned long long t = 0;
    unsigned in = 0;
    uint64_t next;
    size_t k;
    int n;
    if (sscanf(line, "T %llu", &t) == 1) {
        hal_host_set_time(t);
    } else if (sscanf(line, "E %u %llu", &in, &t) == 2) {
        hal_host_set_time(t);
        mux_edge(&mcu, in, t);
    }
    next = mux_run(&mcu, hal_micros());
    k = hal_host_take_report(bench_out, sizeof bench_out - 64);
    if (next == NO_DEADLINE)
        n = snprintf(bench_out + k, 64, "N - %llu\n", (unsigned long long)hal_micros());
    else
        n = snprintf(bench_out + k, 64, "N %llu %llu\n", (unsigned long long)next,
                     (unsigned long long)hal_micros());
    send_all(fd, bench_out, k + (size_t)n);
}

/* Lines from the bench. False when it is gone. */
static bool serve_bench(int fd)
{
    char buf[256];
    ssize_t n = read_some(fd, buf, sizeof buf);
    if (n < 0)
        return false;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] != '\n') {
            if (bench_in_n < sizeof bench_in - 1)
                bench_in[bench_in_n++] = buf[i];
            continue;
        }
        bench_in[bench_in_n] = '\0';
        bench_command(fd, bench_in);
        bench_in_n = 0;
    }
    return true;
}

/* Poll timeout: the watchdog's and, on the host's clock, the run's next deadline. */
static struct timespec timeout(bool bench_time)
{
    uint64_t wait_us = (uint64_t)mux_poll(&mcu) * 1000u, next;
    if (wait_us > 1000000u)
        wait_us = 1000000u;
    if (!bench_time && (next = mux_run(&mcu, hal_micros())) != NO_DEADLINE) {
        uint64_t now = hal_micros();
        uint64_t until = next > now ? next - now : 0;
        if (until < wait_us)
            wait_us = until;
    }
    return (struct timespec){(time_t)(wait_us / 1000000u), (long)(wait_us % 1000000u) * 1000};
}

int main(int argc, char **argv)
{
    struct pollfd fds[2 + MAX_CLIENTS];
    const char *shm = NULL;
    int port = 0, bench_fd = -1, nclients = 0;
    chain = bench_chain;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value)
            usage("missing value");
        if (!strcmp(arg, "--port"))
            port = atoi(value);
        else if (!strcmp(arg, "--boards"))
            parse_boards(value);
        else if (!strcmp(arg, "--shm"))
            shm = value;
        else if (!strcmp(arg, "--bench-fd"))
            bench_fd = atoi(value);
        else
            usage("unknown option");
        i++;
    }
    signal(SIGPIPE, SIG_IGN);
    hal_host_init(&chain, shm, bench_fd >= 0);
    mux_init(&mcu, &chain);
    fds[0] = (struct pollfd){listen_on(port), POLLIN, 0};
    fds[1] = (struct pollfd){bench_fd, POLLIN, 0};
    for (;;) {
        struct timespec wait = timeout(bench_fd >= 0);
        int ready = ppoll(fds, (nfds_t)(2 + nclients), &wait, NULL);
        if (ready < 0 && errno != EINTR) {
            perror("hil-mux-host: poll");
            return 1;
        }
        if (ready <= 0)
            continue;
        if (fds[1].revents && !serve_bench(bench_fd))
            return 0; /* the bench that gives this firmware its time is gone */
        for (int c = 0; c < nclients; c++) {
            if (fds[2 + c].revents && !serve_client(fds[2 + c].fd, &lines[c], bench_fd >= 0)) {
                close(fds[2 + c].fd);
                nclients--;
                fds[2 + c] = fds[2 + nclients];
                lines[c] = lines[nclients];
                c--;
            }
        }
        if (fds[0].revents & POLLIN) {
            int fd = accept(fds[0].fd, NULL, NULL), one = 1;
            if (fd >= 0 && nclients == MAX_CLIENTS) {
                close(fd);
            } else if (fd >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                fds[2 + nclients] = (struct pollfd){fd, POLLIN, 0};
                linebuf_clear(&lines[nclients++]);
            }
        }
    }
}
