/*
 * mcu_dc board support: the only things the firmware needs from a board.
 *
 * One implementation per board family lives beside this header (startup code, UART,
 * counter); a host implementation over stdin/stdout serves host tests of the protocol.
 * C99, no malloc, no stdio on the MCU side.
 */
#ifndef MCU_DC_BSP_H
#define MCU_DC_BSP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Unit of mcu_dc_bsp_counter(): what the firmware reports per inference. */
#define MCU_DC_COUNTER_CYCLES 0u       /* CPU clock cycles (real hardware) */
#define MCU_DC_COUNTER_INSTRUCTIONS 1u /* executed instructions (QEMU -icount shift=0) */

/* Clocks, UART and counter up; called once from main(). */
void mcu_dc_bsp_init(void);

/* Next received byte (0..255), or -1 when none has arrived yet. Never blocks. */
int mcu_dc_bsp_getc(void);

/* Transmit bytes; blocks until they are handed to the UART. */
void mcu_dc_bsp_write(const uint8_t *data, uint32_t len);

/* Free-running 32-bit up-counter in the unit mcu_dc_bsp_counter_unit() names. */
uint32_t mcu_dc_bsp_counter(void);
uint32_t mcu_dc_bsp_counter_unit(void);

/* Board id as in boards/<id>.toml, e.g. "qemu-mps2-an386". */
const char *mcu_dc_bsp_board_name(void);

/* End the program with an exit code: semihosting SYS_EXIT under QEMU (qemu-system-arm
 * exits with that code), exit() on the host, a tight loop on real hardware. */
void mcu_dc_bsp_exit(int code);

#ifdef __cplusplus
}
#endif

#endif /* MCU_DC_BSP_H */
