/*
 * mcu_dc BSP for STM32 parts with the second-generation U(S)ART register layout ("USART v2":
 * CR1 0x00, CR3 0x08, BRR 0x0C, ISR 0x1C, ICR 0x20, RDR 0x24, TDR 0x28), talking through the
 * ST-LINK virtual COM port of a Nucleo-144 board at 115200 8N1. The board file picks the chip
 * with MCU_DC_BSP_VARIANT_<X> (boards/<id>.toml `bsp_variant`, via Board.bsp_defines()):
 *
 *   STM32F7  NUCLEO-F746ZG  USART3 (0x40004800) TX PD8 / RX PD9, AF7.
 *            ST RM0385 (STM32F75x/74x reference manual): "Memory map" (RCC 0x40023800,
 *            GPIOD 0x40020C00, USART3 0x40004800); RCC chapter: RCC_AHB1ENR (0x30, GPIODEN
 *            bit 3), RCC_APB1ENR (0x40, USART3EN bit 18), RCC_DCKCFGR2 (USART3SEL reset 00 =
 *            APB1 clock); GPIO chapter (MODER, AFRH); USART chapter, register map.
 *            DS10916 alternate-function table: PD8/PD9 AF7 = USART3_TX/RX. UM1974 (Nucleo-144
 *            user manual) "USART communication": USART3 PD8/PD9 is the ST-LINK virtual COM port.
 *            Clock: HSI 16 MHz after reset, APB1 prescaler 1: PCLK1 16 MHz.
 *   STM32H7  NUCLEO-H743ZI  USART3 (0x40004800) TX PD8 / RX PD9, AF7.
 *            ST RM0433 (STM32H742/743/750/753): "Memory map" (RCC 0x58024400, GPIOD
 *            0x58020C00); RCC chapter: RCC_AHB4ENR (0x0E0, GPIODEN bit 3), RCC_APB1LENR
 *            (0x0E8, USART3EN bit 18), RCC_D2CCIP2R (USART234578SEL reset 000 = rcc_pclk1),
 *            RCC_CR (HSIDIV reset 00 = /1: HSI 64 MHz); USART chapter (FIFO mode off after
 *            reset: ISR bit 5 RXNE, bit 7 TXE). UM2407 (Nucleo-144 H7) "USART communication":
 *            USART3 PD8/PD9 is the ST-LINK virtual COM port. Clock: HSI 64 MHz after reset,
 *            all bus prescalers 1: rcc_pclk1 64 MHz. The supply configuration (PWR_CR3) is
 *            left at its reset state (LDO), enough for 64 MHz at the reset voltage scale.
 *   STM32L4P NUCLEO-L4R5ZI  LPUART1 (0x40008000) TX PG7 / RX PG8, AF8.
 *            ST RM0432 (STM32L4+ reference manual): "Memory map" (RCC 0x40021000, PWR
 *            0x40007000, GPIOG 0x48001800, LPUART1 0x40008000); RCC chapter: RCC_CR (HSION
 *            bit 8, HSIRDY bit 10), RCC_AHB2ENR (0x4C, GPIOGEN bit 6), RCC_APB1ENR1 (0x58,
 *            PWREN bit 28), RCC_APB1ENR2 (0x5C, LPUART1EN bit 0), RCC_CCIPR (0x88, LPUART1SEL
 *            bits 11:10, 10 = HSI16); PWR chapter: PWR_CR2 (0x04, IOSV bit 9: PG[15:2] run
 *            from VDDIO2 and stay isolated until it is set); LPUART chapter: BRR = 256 * fck /
 *            baud. DS12023 alternate-function table: PG7/PG8 AF8 = LPUART1_TX/RX. UM2179
 *            (Nucleo-144 L4+) "USART communication": LPUART1 PG7/PG8 is the ST-LINK virtual
 *            COM port. Clock: the core stays on MSI 4 MHz (the reset clock); LPUART1 runs
 *            from HSI16, which this BSP starts: more accurate than the untrimmed MSI.
 *
 * Overrun detection is disabled (CR3.OVRDIS, bit 12 on all three): a byte the firmware did
 * not fetch in time is overwritten instead of stopping reception until ORE is cleared.
 * Counter: DWT CYCCNT (cycles of the reset clock: 16 / 64 / 4 MHz). Exit: spins (no debugger).
 * Every wait for a hardware flag is bounded by MCU_DC_BSP_WAIT_LIMIT polls: if TXE never
 * comes (UART clock not running), write() drops the byte instead of hanging.
 * Tested on the host against a register model (tests/boards/bsp_sim); untested on silicon.
 */
#include "mcu_dc_bsp_config.h"
#include "mcu_dc_dwt.h"

#define BAUD 115200u

#if defined(MCU_DC_BSP_VARIANT_STM32F7)
#define RCC_GPIO_EN MCU_DC_REG32(0x40023830u) /* RCC_AHB1ENR */
#define RCC_GPIO_EN_BIT (1u << 3)             /* GPIODEN */
#define RCC_UART_EN MCU_DC_REG32(0x40023840u) /* RCC_APB1ENR */
#define RCC_UART_EN_BIT (1u << 18)            /* USART3EN */
#define GPIO_BASE 0x40020C00u                 /* GPIOD */
#define UART_BASE 0x40004800u                 /* USART3 */
#define PIN_TX 8u
#define PIN_RX 9u
#define PIN_AF 7u
#define UART_CLOCK_HZ 16000000u
#define UART_BRR ((UART_CLOCK_HZ + BAUD / 2u) / BAUD) /* oversampling 16: 139 */
#elif defined(MCU_DC_BSP_VARIANT_STM32H7)
#define RCC_GPIO_EN MCU_DC_REG32(0x580244E0u) /* RCC_AHB4ENR */
#define RCC_GPIO_EN_BIT (1u << 3)             /* GPIODEN */
#define RCC_UART_EN MCU_DC_REG32(0x580244E8u) /* RCC_APB1LENR */
#define RCC_UART_EN_BIT (1u << 18)            /* USART3EN */
#define GPIO_BASE 0x58020C00u                 /* GPIOD */
#define UART_BASE 0x40004800u                 /* USART3 */
#define PIN_TX 8u
#define PIN_RX 9u
#define PIN_AF 7u
#define UART_CLOCK_HZ 64000000u
#define UART_BRR ((UART_CLOCK_HZ + BAUD / 2u) / BAUD) /* oversampling 16: 556 */
#elif defined(MCU_DC_BSP_VARIANT_STM32L4P)
#define RCC_CR MCU_DC_REG32(0x40021000u)
#define RCC_CR_HSION (1u << 8)
#define RCC_CR_HSIRDY (1u << 10)
#define RCC_GPIO_EN MCU_DC_REG32(0x4002104Cu) /* RCC_AHB2ENR */
#define RCC_GPIO_EN_BIT (1u << 6)             /* GPIOGEN */
#define RCC_PWR_EN MCU_DC_REG32(0x40021058u)  /* RCC_APB1ENR1 */
#define RCC_PWR_EN_BIT (1u << 28)             /* PWREN */
#define RCC_UART_EN MCU_DC_REG32(0x4002105Cu) /* RCC_APB1ENR2 */
#define RCC_UART_EN_BIT (1u << 0)             /* LPUART1EN */
#define RCC_CCIPR MCU_DC_REG32(0x40021088u)
#define RCC_CCIPR_LPUART1SEL_MASK (3u << 10)
#define RCC_CCIPR_LPUART1SEL_HSI16 (2u << 10)
#define PWR_CR2 MCU_DC_REG32(0x40007004u)
#define PWR_CR2_IOSV (1u << 9)
#define GPIO_BASE 0x48001800u /* GPIOG */
#define UART_BASE 0x40008000u /* LPUART1 */
#define PIN_TX 7u
#define PIN_RX 8u
#define PIN_AF 8u
#define UART_CLOCK_HZ 16000000u
/* LPUART: BRR = 256 * fck / baud (RM0432, LPUART baud rate generation), 35556; fck must lie in [3, 4096] x baud. */
#define UART_BRR ((uint32_t)((256ull * UART_CLOCK_HZ + BAUD / 2u) / BAUD))
#else
#error "stm32v2 BSP: define MCU_DC_BSP_VARIANT_STM32F7, _STM32H7 or _STM32L4P (bsp_variant in the board file)"
#endif

#define GPIO_MODER MCU_DC_REG32(GPIO_BASE + 0x00u)
#define GPIO_AFRL MCU_DC_REG32(GPIO_BASE + 0x20u)
#define GPIO_AFRH MCU_DC_REG32(GPIO_BASE + 0x24u)

#define UART_CR1 MCU_DC_REG32(UART_BASE + 0x00u)
#define UART_CR3 MCU_DC_REG32(UART_BASE + 0x08u)
#define UART_BRR_REG MCU_DC_REG32(UART_BASE + 0x0Cu)
#define UART_ISR MCU_DC_REG32(UART_BASE + 0x1Cu)
#define UART_RDR MCU_DC_REG32(UART_BASE + 0x24u)
#define UART_TDR MCU_DC_REG32(UART_BASE + 0x28u)
#define CR1_UE (1u << 0)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define CR3_OVRDIS (1u << 12)
#define ISR_RXNE (1u << 5)
#define ISR_TXE (1u << 7)

/* Alternate function `af` on pin `pin` of the port (GPIOx_MODER = 10, GPIOx_AFRL/AFRH). */
static void pin_alternate(uint32_t pin, uint32_t af)
{
    GPIO_MODER = (GPIO_MODER & ~(3u << (2u * pin))) | (2u << (2u * pin));
    if (pin < 8u) {
        GPIO_AFRL = (GPIO_AFRL & ~(0xFu << (4u * pin))) | (af << (4u * pin));
    } else {
        GPIO_AFRH = (GPIO_AFRH & ~(0xFu << (4u * (pin - 8u)))) | (af << (4u * (pin - 8u)));
    }
}

void mcu_dc_bsp_init(void)
{
#if defined(MCU_DC_BSP_VARIANT_STM32L4P)
    RCC_CR |= RCC_CR_HSION;
    for (uint32_t n = 0; n < MCU_DC_BSP_WAIT_LIMIT && (RCC_CR & RCC_CR_HSIRDY) == 0u; ++n) {
    }
    RCC_CCIPR = (RCC_CCIPR & ~RCC_CCIPR_LPUART1SEL_MASK) | RCC_CCIPR_LPUART1SEL_HSI16;
    RCC_PWR_EN |= RCC_PWR_EN_BIT;
    (void)RCC_PWR_EN; /* read back: the enable takes effect before PWR is touched */
    PWR_CR2 |= PWR_CR2_IOSV;
#endif
    RCC_GPIO_EN |= RCC_GPIO_EN_BIT;
    RCC_UART_EN |= RCC_UART_EN_BIT;
    (void)RCC_UART_EN; /* read back: the clock enable settles before the peripheral is used */
    pin_alternate(PIN_TX, PIN_AF);
    pin_alternate(PIN_RX, PIN_AF);
    UART_CR1 = 0u; /* BRR and CR3 may only be written while UE = 0 */
    UART_CR3 = CR3_OVRDIS;
    UART_BRR_REG = UART_BRR;
    UART_CR1 = CR1_UE | CR1_TE | CR1_RE; /* 8 data bits, no parity (M = 00, PCE = 0); 1 stop bit */
    mcu_dc_dwt_start();
}

int mcu_dc_bsp_getc(void)
{
    if ((UART_ISR & ISR_RXNE) == 0u) {
        return -1;
    }
    return (int)(UART_RDR & 0xFFu); /* reading RDR clears RXNE */
}

void mcu_dc_bsp_write(const uint8_t *data, uint32_t len)
{
    for (uint32_t i = 0; i < len; ++i) {
        uint32_t n = 0;
        while ((UART_ISR & ISR_TXE) == 0u && n < MCU_DC_BSP_WAIT_LIMIT) {
            ++n;
        }
        if (n == MCU_DC_BSP_WAIT_LIMIT) {
            continue; /* the transmitter never became ready: drop the byte, never hang */
        }
        UART_TDR = data[i];
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
