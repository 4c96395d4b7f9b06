/*
 * Host board support: the firmware as a host program over stdin/stdout, so the protocol
 * server runs as a subprocess in tests (tests/device). Not for microcontrollers.
 *
 * getc polls stdin with a 1 ms timeout (so an idle server does not spin a core);
 * end of input ends the program with code 0. The counter is CLOCK_MONOTONIC in
 * nanoseconds, reported as "cycles".
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "mcu_dc_bsp.h"

#ifndef MCU_DC_HOST_BOARD_NAME
#define MCU_DC_HOST_BOARD_NAME "host"
#endif

void mcu_dc_bsp_init(void)
{
}

int mcu_dc_bsp_getc(void)
{
    struct pollfd pfd;
    unsigned char c;
    ssize_t n;
    int r;

    pfd.fd = 0;
    pfd.events = POLLIN;
    pfd.revents = 0;
    r = poll(&pfd, 1, 1);
    if (r <= 0) {
        return -1;
    }
    n = read(0, &c, 1);
    if (n == 1) {
        return (int)c;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return -1;
    }
    exit(0); /* stdin closed: the host went away */
}

void mcu_dc_bsp_write(const uint8_t *data, uint32_t len)
{
    while (len > 0u) {
        ssize_t n = write(1, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            exit(3);
        }
        data += n;
        len -= (uint32_t)n;
    }
}

uint32_t mcu_dc_bsp_counter(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

uint32_t mcu_dc_bsp_counter_unit(void)
{
    return MCU_DC_COUNTER_CYCLES;
}

const char *mcu_dc_bsp_board_name(void)
{
    return MCU_DC_HOST_BOARD_NAME;
}

void mcu_dc_bsp_exit(int code)
{
    exit(code);
}
