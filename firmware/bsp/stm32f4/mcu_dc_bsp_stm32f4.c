/*
 * mcu_dc BSP for STM32F4 boards talking through the ST-LINK virtual COM port:
 * NUCLEO-F401RE (and any STM32F40x/F41x/F401/F411 with USART2 on PA2/PA3).
 *
 * UART: USART2 at 0x40004400, TX PA2 / RX PA3, alternate function AF7 (ST RM0368
 * "STM32F401xB/C/D/E reference manual" §19.6 USART registers, §8.4 GPIO, §6.3 RCC;
 * DS10086 table 9 alternate functions; UM1724 Nucleo-64 user manual §6.8: USART2 is the
 * ST-LINK virtual COM port). 115200 8N1 from the reset clock (HSI 16 MHz): the BSP does not
 * start the PLL, so the core runs at 16 MHz. Counter: DWT CYCCNT (cycles).
 * Exit: spins (no debugger to catch semihosting on hardware).
 * Tested under qemu-system-arm -M netduinoplus2 (STM32F405, same USART IP; QEMU's
 * serial port 1 is USART2); QEMU does not model the DWT, so the counter reads 0 there.
 */
#include "mcu_dc_bsp_config.h"
#include "mcu_dc_dwt.h"

#ifndef MCU_DC_BSP_UART_BASE
#define MCU_DC_BSP_UART_BASE 0x40004400u
#endif

#define RCC_AHB1ENR MCU_DC_REG32(0x40023830u)
#define RCC_APB1ENR MCU_DC_REG32(0x40023840u)
#define GPIOA_MODER MCU_DC_REG32(0x40020000u)
#define GPIOA_AFRL MCU_DC_REG32(0x40020020u)

#define USART_SR MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x00u)
#define USART_DR MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x04u)
#define USART_BRR MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x08u)
#define USART_CR1 MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x0Cu)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_UE (1u << 13)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RE (1u << 2)

#define HSI_HZ 16000000u
#define BAUD 115200u

void mcu_dc_bsp_init(void)
{
    RCC_AHB1ENR |= 1u;         /* GPIOAEN */
    RCC_APB1ENR |= (1u << 17); /* USART2EN */
    (void)RCC_APB1ENR;         /* let the clock enable settle (RM0368 §6.3.10 note) */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 4)) | (0xAu << 4);      /* PA2, PA3: alternate */
    GPIOA_AFRL = (GPIOA_AFRL & ~(0xFFu << 8)) | (0x77u << 8);      /* AF7 = USART2 */
    USART_CR1 = 0u;
    USART_BRR = (HSI_HZ + BAUD / 2u) / BAUD; /* oversampling by 16: 16 MHz / 115200 = 138.9 */
    USART_CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE;
    mcu_dc_dwt_start();
}

int mcu_dc_bsp_getc(void)
{
    if ((USART_SR & USART_SR_RXNE) == 0u) {
        return -1;
    }
    return (int)(USART_DR & 0xFFu);
}

void mcu_dc_bsp_write(const uint8_t *data, uint32_t len)
{
    for (uint32_t i = 0; i < len; ++i) {
        while ((USART_SR & USART_SR_TXE) == 0u) {
        }
        USART_DR = data[i];
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
