/* Host build: the firmware core on a PC, its serial link a TCP port on 127.0.0.1 (pyserial's
 * socket://127.0.0.1:PORT reaches it) and its switch hardware simulated (hal_host.c).
 *
 *   hil-mux-host [--port N] [--boards 1,2,...] [--shm FILE] [--trig-fd FD] [--settle-us US]
 *
 * Prints `listening on 127.0.0.1:PORT` once it accepts connections. Several clients may be
 * connected; each has its own line buffer, all share the one MCU state, as several programs
 * sharing a serial port would. Each byte arriving on --trig-fd is one rising edge on TRIG IN;
 * the firmware writes one byte back once the edge's route is set and read back. */
#define _POSIX_C_SOURCE 200809L
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

#include "hal_host.h"
#include "mux.h"

#define MAX_CLIENTS 8

static struct mux mcu;
static struct chain_config chain;
static struct linebuf lines[MAX_CLIENTS];
static char reply[MUX_REPLY_MAX + 16];

static void usage(const char *why)
{
    fprintf(stderr, "hil-mux-host: %s\nusage: hil-mux-host [--port N] [--boards 1,2,...] "
                    "[--shm FILE] [--trig-fd FD] [--settle-us US]\n", why);
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

/* Bytes from a client: every complete line is answered at once. False when it hung up. */
static bool serve_client(int fd, struct linebuf *lb)
{
    uint8_t buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0)
        return false;
    for (ssize_t i = 0; i < n; i++) {
        if (linebuf_push(lb, buf[i])) {
            send_all(fd, reply, mux_line(&mcu, lb, reply));
            linebuf_clear(lb);
        }
    }
    return true;
}

/* Edges from the trigger line: each byte one edge, acknowledged once handled. */
static bool serve_trigger(int fd)
{
    uint8_t buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0)
        return n < 0 && errno == EINTR;
    for (ssize_t i = 0; i < n; i++)
        mux_edge(&mcu);
    send_all(fd, (const char *)buf, (size_t)n);
    return true;
}

int main(int argc, char **argv)
{
    struct pollfd fds[2 + MAX_CLIENTS];
    const char *shm = NULL;
    int port = 0, trig_fd = -1, nclients = 0;
    long settle_us = 0;
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
        else if (!strcmp(arg, "--trig-fd"))
            trig_fd = atoi(value);
        else if (!strcmp(arg, "--settle-us"))
            settle_us = atol(value);
        else
            usage("unknown option");
        i++;
    }
    signal(SIGPIPE, SIG_IGN);
    hal_host_init(&chain, shm, settle_us);
    mux_init(&mcu, &chain);
    fds[0] = (struct pollfd){listen_on(port), POLLIN, 0};
    fds[1] = (struct pollfd){trig_fd, POLLIN, 0};
    for (;;) {
        uint32_t wait = mux_poll(&mcu);
        int ready = poll(fds, (nfds_t)(2 + nclients), wait > 1000u ? 1000 : (int)wait);
        if (ready < 0 && errno != EINTR) {
            perror("hil-mux-host: poll");
            return 1;
        }
        if (ready <= 0)
            continue;
        if (fds[1].revents && !serve_trigger(trig_fd))
            return 0; /* the bench that drives the trigger line is gone */
        for (int c = 0; c < nclients; c++) {
            if (fds[2 + c].revents && !serve_client(fds[2 + c].fd, &lines[c])) {
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
