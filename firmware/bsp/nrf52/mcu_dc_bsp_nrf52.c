/*
 * mcu_dc BSP for the Arduino Nano 33 BLE (Nordic nRF52840, Cortex-M4F).
 *
 * The board's USB connector is the nRF52840's native USB (no UART bridge), so mcu_dc talks
 * on UARTE0 through the header pins: D1/TX = P1.03 (output), D0/RX = P1.10 (input), 115200
 * 8N1, no flow control, 3.3 V logic. Connect a 3.3 V USB-serial adapter: adapter RX to D1/TX,
 * adapter TX to D0/RX, GND to GND (the nRF52840 pins are not 5 V tolerant).
 * Pins: Arduino Nano 33 BLE schematic / ArduinoCore-mbed variant (TX P1.03, RX P1.10).
 *
 * Nordic nRF52840 Product Specification v1.1:
 *   §4.2.4 memory map (CLOCK 0x40000000, UARTE0 0x40002000, P1 0x50000300);
 *   §6.4 CLOCK: TASKS_HFCLKSTART 0x000, EVENTS_HFCLKSTARTED 0x100 -- the 64 MHz crystal
 *       oscillator (HFXO) is started so that the UART runs from an accurate clock;
 *   §6.9 GPIO: OUTSET 0x508, DIRSET 0x518, PIN_CNF[n] 0x700 + 4n; the TXD pin is an output
 *       driven high, RXD an input (§6.34.7 "Pin configuration");
 *   §6.34 UARTE: TASKS_STARTRX 0x000, TASKS_STARTTX 0x008, EVENTS_ENDRX 0x110, EVENTS_ENDTX
 *       0x120, EVENTS_ERROR 0x124, EVENTS_RXSTARTED 0x14C, SHORTS 0x200 (ENDRX_STARTRX bit 5),
 *       ERRORSRC 0x480, ENABLE 0x500 (8 = UARTE), PSEL.RTS/TXD/CTS/RXD 0x508/0x50C/0x510/
 *       0x514 (PIN bits 4:0, PORT bit 5, CONNECT bit 31 = 1 disconnected), BAUDRATE 0x524
 *       (0x01D60000 = 115200, actual 115108 baud), RXD.PTR/MAXCNT 0x534/0x538, TXD.PTR/MAXCNT
 *       0x544/0x548, CONFIG 0x56C (0 = no parity, one stop bit, no flow control).
 *
 * EasyDMA only reads and writes Data RAM, so write() copies through a RAM buffer (the
 * caller's bytes may live in flash). Reception: two 1-byte RX buffers and the ENDRX_STARTRX
 * short. RXD.PTR is double-buffered (§6.34.3): after RXSTARTED the next buffer's address is
 * already prepared, so when a byte ends one transfer (ENDRX) the short starts the next one
 * at once -- a byte that follows back to back is not lost while getc() is still handling the
 * previous one. getc() must run at least once per character time (86.8 us) while the host
 * sends, as with a UART holding register.
 * Counter: DWT CYCCNT (64 MHz CPU cycles). Exit: spins. Every wait for a hardware event is
 * bounded by MCU_DC_BSP_WAIT_LIMIT polls (an ENDTX that never comes drops the chunk).
 * Tested on the host against a register/EasyDMA model (tests/boards/bsp_sim); untested on
 * silicon.
 */
#include "mcu_dc_bsp_config.h"
#include "mcu_dc_dwt.h"

#define CLOCK_TASKS_HFCLKSTART MCU_DC_REG32(0x40000000u)
#define CLOCK_EVENTS_HFCLKSTARTED MCU_DC_REG32(0x40000100u)

#define P1_BASE 0x50000300u
#define P1_OUTSET MCU_DC_REG32(P1_BASE + 0x508u)
#define P1_DIRSET MCU_DC_REG32(P1_BASE + 0x518u)
#define P1_PIN_CNF(n) MCU_DC_REG32(P1_BASE + 0x700u + 4u * (n))
#define PIN_TX 3u  /* P1.03 = D1/TX */
#define PIN_RX 10u /* P1.10 = D0/RX */
#define PSEL_PORT1 (1u << 5)
#define PSEL_DISCONNECTED 0xFFFFFFFFu

#define UARTE_BASE 0x40002000u
#define UARTE_TASKS_STARTRX MCU_DC_REG32(UARTE_BASE + 0x000u)
#define UARTE_TASKS_STARTTX MCU_DC_REG32(UARTE_BASE + 0x008u)
#define UARTE_EVENTS_ENDRX MCU_DC_REG32(UARTE_BASE + 0x110u)
#define UARTE_EVENTS_ENDTX MCU_DC_REG32(UARTE_BASE + 0x120u)
#define UARTE_EVENTS_ERROR MCU_DC_REG32(UARTE_BASE + 0x124u)
#define UARTE_EVENTS_RXSTARTED MCU_DC_REG32(UARTE_BASE + 0x14Cu)
#define UARTE_SHORTS MCU_DC_REG32(UARTE_BASE + 0x200u)
#define UARTE_ERRORSRC MCU_DC_REG32(UARTE_BASE + 0x480u)
#define UARTE_ENABLE MCU_DC_REG32(UARTE_BASE + 0x500u)
#define UARTE_PSEL_RTS MCU_DC_REG32(UARTE_BASE + 0x508u)
#define UARTE_PSEL_TXD MCU_DC_REG32(UARTE_BASE + 0x50Cu)
#define UARTE_PSEL_CTS MCU_DC_REG32(UARTE_BASE + 0x510u)
#define UARTE_PSEL_RXD MCU_DC_REG32(UARTE_BASE + 0x514u)
#define UARTE_BAUDRATE MCU_DC_REG32(UARTE_BASE + 0x524u)
#define UARTE_RXD_PTR MCU_DC_REG32(UARTE_BASE + 0x534u)
#define UARTE_RXD_MAXCNT MCU_DC_REG32(UARTE_BASE + 0x538u)
#define UARTE_TXD_PTR MCU_DC_REG32(UARTE_BASE + 0x544u)
#define UARTE_TXD_MAXCNT MCU_DC_REG32(UARTE_BASE + 0x548u)
#define UARTE_CONFIG MCU_DC_REG32(UARTE_BASE + 0x56Cu)
#define UARTE_SHORTS_ENDRX_STARTRX (1u << 5)
#define UARTE_ENABLE_ENABLED 8u
#define UARTE_BAUDRATE_115200 0x01D60000u

#define TX_CHUNK 64u

static uint8_t tx_buf[TX_CHUNK];
static volatile uint8_t rx_buf[2];
static uint32_t rx_cur; /* the buffer the running transfer fills; the other one is prepared */

/* Wait (bounded) for the event register at `addr` to read non-zero; 0 when it never came. */
static int wait_event(uint32_t addr)
{
    for (uint32_t n = 0; n < MCU_DC_BSP_WAIT_LIMIT; ++n) {
        if (MCU_DC_REG32(addr) != 0u) {
            return 1;
        }
    }
    return 0;
}

void mcu_dc_bsp_init(void)
{
    CLOCK_EVENTS_HFCLKSTARTED = 0u;
    CLOCK_TASKS_HFCLKSTART = 1u;
    (void)wait_event(0x40000100u);

    P1_OUTSET = 1u << PIN_TX;
    P1_DIRSET = 1u << PIN_TX;
    P1_PIN_CNF(PIN_TX) = 1u; /* DIR output, input buffer connected, no pull */
    P1_PIN_CNF(PIN_RX) = 0u; /* DIR input, input buffer connected, no pull */

    UARTE_ENABLE = 0u;
    UARTE_PSEL_TXD = PSEL_PORT1 | PIN_TX;
    UARTE_PSEL_RXD = PSEL_PORT1 | PIN_RX;
    UARTE_PSEL_RTS = PSEL_DISCONNECTED;
    UARTE_PSEL_CTS = PSEL_DISCONNECTED;
    UARTE_BAUDRATE = UARTE_BAUDRATE_115200;
    UARTE_CONFIG = 0u;
    UARTE_ENABLE = UARTE_ENABLE_ENABLED;

    UARTE_EVENTS_ENDRX = 0u;
    UARTE_EVENTS_RXSTARTED = 0u;
    UARTE_EVENTS_ERROR = 0u;
    UARTE_RXD_PTR = MCU_DC_DMA_ADDR(&rx_buf[0]);
    UARTE_RXD_MAXCNT = 1u;
    UARTE_SHORTS = UARTE_SHORTS_ENDRX_STARTRX;
    UARTE_TASKS_STARTRX = 1u;
    rx_cur = 0u;
    if (wait_event(UARTE_BASE + 0x14Cu)) {
        UARTE_EVENTS_RXSTARTED = 0u;
        UARTE_RXD_PTR = MCU_DC_DMA_ADDR(&rx_buf[1]); /* the transfer after this one */
    }
    mcu_dc_dwt_start();
}

int mcu_dc_bsp_getc(void)
{
    if (UARTE_EVENTS_ERROR != 0u) {
        UARTE_ERRORSRC = UARTE_ERRORSRC; /* write 1 to clear (framing, parity, overrun, break) */
        UARTE_EVENTS_ERROR = 0u;
    }
    if (UARTE_EVENTS_ENDRX == 0u) {
        return -1;
    }
    UARTE_EVENTS_ENDRX = 0u;
    int c = (int)rx_buf[rx_cur];
    /* The short has already started the transfer into the prepared buffer; once RXSTARTED
     * says its pointer was taken, prepare the buffer just read as the one after it. */
    if (wait_event(UARTE_BASE + 0x14Cu)) {
        UARTE_EVENTS_RXSTARTED = 0u;
        UARTE_RXD_PTR = MCU_DC_DMA_ADDR(&rx_buf[rx_cur]);
    }
    rx_cur ^= 1u;
    return c;
}

void mcu_dc_bsp_write(const uint8_t *data, uint32_t len)
{
    while (len > 0u) {
        uint32_t n = len < TX_CHUNK ? len : TX_CHUNK;
        for (uint32_t i = 0; i < n; ++i) {
            tx_buf[i] = data[i];
        }
        UARTE_TXD_PTR = MCU_DC_DMA_ADDR(tx_buf);
        UARTE_TXD_MAXCNT = n;
        UARTE_EVENTS_ENDTX = 0u;
        UARTE_TASKS_STARTTX = 1u;
        (void)wait_event(UARTE_BASE + 0x120u); /* tx_buf is reused only after ENDTX */
        data += n;
        len -= n;
    }
}

uint32_t mcu_dc_bsp_counter(void)
{
    return mcu_dc_dwt_cycles();
}

uint32_t mcu_dc_bsp_counter_unit(void)
{
    return MCU_DC_BSP_COUNTER_UNIT;
}

const char *mcu_dc_bsp_board_name(void)
{
    return MCU_DC_BSP_BOARD;
}

void mcu_dc_bsp_exit(int code)
{
    (void)code;
    for (;;) {
    }
}
