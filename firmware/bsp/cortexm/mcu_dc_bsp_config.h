/*
 * Per-board settings the build passes as -D flags (mcu_dc/deploy/armbuild.py takes them
 * from boards/<id>.toml):
 *   MCU_DC_BSP_BOARD        board id string, e.g. "qemu-mps2-an386"
 *   MCU_DC_BSP_UART_BASE    base address of the UART the firmware talks on
 *   MCU_DC_BSP_TIMER_BASE   base address of the counter's timer (where the family uses one)
 *   MCU_DC_BSP_COUNTER_MUL / MCU_DC_BSP_COUNTER_DIV
 *                           counter unit per timer tick, as a fraction: under QEMU
 *                           -icount shift=0 one instruction takes 1 ns, so a 25 MHz timer
 *                           advances once every 40 instructions (MUL 40, DIV 1).
 *   MCU_DC_BSP_COUNTER_UNIT MCU_DC_COUNTER_INSTRUCTIONS (emulated) or _CYCLES (hardware)
 *   MCU_DC_BSP_VARIANT_<X>  the chip variant of a family BSP that serves several parts
 *                           (e.g. MCU_DC_BSP_VARIANT_STM32F7 for firmware/bsp/stm32v2)
 *   MCU_DC_BSP_WAIT_LIMIT   polls before a wait for a hardware flag gives up (default 1000000)
 *
 * Host simulation (tests/boards/bsp_sim): with -DMCU_DC_BSP_HOST_SIM every register access
 * MCU_DC_REG32(a) goes through mcu_dc_sim_reg(a), which returns a pointer into the C
 * peripheral model's register file, and MCU_DC_DMA_ADDR(p) (the 32-bit bus address of a RAM
 * buffer handed to an EasyDMA peripheral) through mcu_dc_sim_dma_addr(p). Nothing changes
 * for the target build.
 */
#ifndef MCU_DC_BSP_CONFIG_H
#define MCU_DC_BSP_CONFIG_H

#include "mcu_dc_bsp.h"

/* A generated project carries mcu_dc_board.h: the settings of every board, selected by
 * -DMCU_DC_BOARD_<ID> (one platformio.ini env per board; mcu-dc build passes it too). */
#if defined(__has_include)
#if __has_include("mcu_dc_board.h")
#include "mcu_dc_board.h"
#endif
#endif

#ifndef MCU_DC_BSP_BOARD
#error "MCU_DC_BSP_BOARD (the board id) must be defined by the build"
#endif
#ifndef MCU_DC_BSP_COUNTER_MUL
#define MCU_DC_BSP_COUNTER_MUL 1u
#endif
#ifndef MCU_DC_BSP_COUNTER_DIV
#define MCU_DC_BSP_COUNTER_DIV 1u
#endif
#ifndef MCU_DC_BSP_COUNTER_UNIT
#define MCU_DC_BSP_COUNTER_UNIT MCU_DC_COUNTER_INSTRUCTIONS
#endif

#ifndef MCU_DC_BSP_WAIT_LIMIT
#define MCU_DC_BSP_WAIT_LIMIT 1000000u
#endif

#ifdef MCU_DC_BSP_HOST_SIM
volatile uint32_t *mcu_dc_sim_reg(uintptr_t addr);
uint32_t mcu_dc_sim_dma_addr(const volatile void *ptr);
#define MCU_DC_REG32(addr) (*mcu_dc_sim_reg((uintptr_t)(addr)))
#define MCU_DC_DMA_ADDR(ptr) mcu_dc_sim_dma_addr(ptr)
#else
#define MCU_DC_REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define MCU_DC_DMA_ADDR(ptr) ((uint32_t)(uintptr_t)(ptr))
#endif

/* Timer ticks (64-bit, never wrapping in practice) to counter units, truncated to 32 bits.
 * Differences of the 32-bit results are exact modulo 2^32. */
static inline uint32_t mcu_dc_bsp_ticks_to_units(uint64_t ticks)
{
    return (uint32_t)((ticks * (uint64_t)MCU_DC_BSP_COUNTER_MUL) / (uint64_t)MCU_DC_BSP_COUNTER_DIV);
}

#endif /* MCU_DC_BSP_CONFIG_H */
