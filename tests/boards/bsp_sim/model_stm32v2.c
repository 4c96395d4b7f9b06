/*
 * Peripheral model for firmware/bsp/stm32v2: RCC clock enables, one GPIO port, one
 * USART/LPUART with the v2 register layout (CR1 0x00, CR2 0x04, CR3 0x08, BRR 0x0C, ISR 0x1C,
 * ICR 0x20, RDR 0x24, TDR 0x28), DWT. Register writes while the peripheral's clock is off are
 * failures (the hardware ignores them). Addresses and bits from RM0385 (F7), RM0433 (H7),
 * RM0432 (L4+) and the Nucleo-144 user manuals (UM1974, UM2407, UM2179) for the VCP pins.
 */
#include "sim.h"

#if defined(MCU_DC_BSP_VARIANT_STM32F7)
#define GPIO_EN_REG 0x40023830u /* RCC_AHB1ENR */
#define GPIO_EN_BIT (1u << 3)   /* GPIODEN */
#define UART_EN_REG 0x40023840u /* RCC_APB1ENR */
#define UART_EN_BIT (1u << 18)  /* USART3EN */
#define GPIO 0x40020C00u        /* GPIOD */
#define UART 0x40004800u        /* USART3 */
#define TX 8u
#define RX 9u
#define AF 7u
#define LPUART 0
#elif defined(MCU_DC_BSP_VARIANT_STM32H7)
#define GPIO_EN_REG 0x580244E0u /* RCC_AHB4ENR */
#define GPIO_EN_BIT (1u << 3)
#define UART_EN_REG 0x580244E8u /* RCC_APB1LENR */
#define UART_EN_BIT (1u << 18)
#define GPIO 0x58020C00u
#define UART 0x40004800u
#define TX 8u
#define RX 9u
#define AF 7u
#define LPUART 0
#elif defined(MCU_DC_BSP_VARIANT_STM32L4P)
#define RCC_CR 0x40021000u
#define GPIO_EN_REG 0x4002104Cu /* RCC_AHB2ENR */
#define GPIO_EN_BIT (1u << 6)   /* GPIOGEN */
#define PWR_EN_REG 0x40021058u  /* RCC_APB1ENR1 */
#define PWR_EN_BIT (1u << 28)   /* PWREN */
#define UART_EN_REG 0x4002105Cu /* RCC_APB1ENR2 */
#define UART_EN_BIT (1u << 0)   /* LPUART1EN */
#define RCC_CCIPR 0x40021088u
#define PWR_CR2 0x40007004u
#define GPIO 0x48001800u /* GPIOG */
#define UART 0x40008000u /* LPUART1 */
#define TX 7u
#define RX 8u
#define AF 8u
#define LPUART 1
#else
#error "variant"
#endif

#define CR1 (UART + 0x00u)
#define CR2 (UART + 0x04u)
#define CR3 (UART + 0x08u)
#define BRR (UART + 0x0Cu)
#define ISR (UART + 0x1Cu)
#define ICR (UART + 0x20u)
#define RDR (UART + 0x24u)
#define TDR (UART + 0x28u)
#define ISR_RXNE (1u << 5)
#define ISR_TC (1u << 6)
#define ISR_TXE (1u << 7)
#define ISR_ORE (1u << 3)

const unsigned model_getc_accesses = 2u; /* ISR, RDR */
const unsigned model_rx_fifo = 1u;

static int rx_full;
static uint8_t rdr;
static unsigned tx_busy; /* steps until the transmit data register is free again */
static int tx_stall;
#if LPUART
static unsigned hsi_countdown;
#endif

void model_setup(void)
{
    cortexm_setup(1, 0);
    sim_add(GPIO_EN_REG, "RCC GPIO enable", 0u);
    sim_add(UART_EN_REG, "RCC UART enable", 0u);
    struct sim_reg *r;
#if LPUART
    sim_add(RCC_CR, "RCC_CR", 0x00000063u); /* MSI on, 4 MHz range */
    sim_add(PWR_EN_REG, "RCC_APB1ENR1", 0u);
    sim_add(RCC_CCIPR, "RCC_CCIPR", 0u);
    r = sim_add(PWR_CR2, "PWR_CR2", 0u);
    sim_set_gate(r, PWR_EN_REG, PWR_EN_BIT, 1);
    r = sim_add(GPIO + 0x00u, "GPIOG_MODER", 0xFFFFFFFFu); /* L4+: analog mode after reset */
#else
    r = sim_add(GPIO + 0x00u, "GPIOD_MODER", 0u);
#endif
    sim_set_gate(r, GPIO_EN_REG, GPIO_EN_BIT, 1);
    r = sim_add(GPIO + 0x20u, "GPIO_AFRL", 0u);
    sim_set_gate(r, GPIO_EN_REG, GPIO_EN_BIT, 1);
    r = sim_add(GPIO + 0x24u, "GPIO_AFRH", 0u);
    sim_set_gate(r, GPIO_EN_REG, GPIO_EN_BIT, 1);
    const uintptr_t uart_regs[] = {CR1, CR2, CR3, BRR, ISR, ICR, RDR, TDR};
    const char *names[] = {"CR1", "CR2", "CR3", "BRR", "ISR", "ICR", "RDR", "TDR"};
    for (unsigned i = 0; i < 8u; ++i) {
        r = sim_add(uart_regs[i], names[i], uart_regs[i] == ISR ? (ISR_TXE | ISR_TC) : 0u);
        sim_set_gate(r, UART_EN_REG, UART_EN_BIT, 1);
        if (uart_regs[i] == TDR || uart_regs[i] == ICR) {
            sim_set_detect(r);
        }
    }
}

void model_set_tx_stall(int on)
{
    tx_stall = on;
}

void model_tick(void)
{
    if (tx_busy > 0u && !tx_stall) {
        --tx_busy;
    }
#if LPUART
    if (hsi_countdown > 0u && --hsi_countdown == 0u) {
        sim_poke(RCC_CR, sim_peek(RCC_CR) | (1u << 10)); /* HSIRDY */
    }
#endif
}

int model_rx(uint8_t byte)
{
    uint32_t cr1 = sim_peek(CR1);
    if ((cr1 & 0x5u) != 0x5u) {
        return 0; /* UE and RE must be set to receive */
    }
    int lost = rx_full;
    if (lost && (sim_peek(CR3) & (1u << 12)) == 0u) {
        sim_poke(ISR, sim_peek(ISR) | ISR_ORE); /* overrun: the byte stays in the shift register */
        return 0;
    }
    rdr = byte; /* OVRDIS: the new byte overwrites RDR */
    rx_full = 1;
    return !lost;
}

void model_access(struct sim_reg *r)
{
    if (cortexm_access(r)) {
        return;
    }
    if (r->addr == ISR) {
        uint32_t v = r->value & ~(ISR_RXNE | ISR_TXE);
        if (rx_full) {
            v |= ISR_RXNE;
        }
        if (tx_busy == 0u && (sim_peek(CR1) & 0x9u) == 0x9u) {
            v |= ISR_TXE;
        }
        r->value = v;
    } else if (r->addr == RDR) {
        r->value = rdr;
    } else if (r->detect) {
        r->value = SIM_SENTINEL;
    }
}

void model_settle(struct sim_reg *r, int written)
{
    if (r->addr == RDR && !written) {
        rx_full = 0; /* reading RDR clears RXNE */
    } else if (r->addr == TDR) {
        if (written) {
            if ((sim_peek(CR1) & 0x9u) != 0x9u) {
                sim_fail("TDR written with UE/TE off");
            } else if (tx_busy != 0u) {
                sim_fail("TDR written while TXE = 0: the previous byte is overwritten");
            } else {
                sim_tx((uint8_t)r->value);
                tx_busy = tx_stall ? 1u : 3u;
            }
        }
        r->value = 0u;
    } else if (r->addr == ICR) {
        if (written) {
            sim_poke(ISR, sim_peek(ISR) & ~r->value);
        }
        r->value = 0u;
    } else if ((r->addr == BRR || r->addr == CR3 || r->addr == CR2) && written && (sim_peek(CR1) & 1u) != 0u) {
        sim_fail("%s written while CR1.UE = 1 (only allowed with the UART disabled)", r->name);
    }
#if LPUART
    else if (r->addr == RCC_CR && written && (r->value & (1u << 8)) != 0u && (r->value & (1u << 10)) == 0u &&
             hsi_countdown == 0u) {
        hsi_countdown = 4u; /* HSI16 becomes ready a little later */
    }
#endif
}

static uint32_t field(uintptr_t addr, unsigned lsb, unsigned width)
{
    return (sim_peek(addr) >> lsb) & ((1u << width) - 1u);
}

void model_check_init(void)
{
    cortexm_check_init(1, 0);
    sim_check((sim_peek(GPIO_EN_REG) & GPIO_EN_BIT) != 0u, "GPIO port clock not enabled");
    sim_check((sim_peek(UART_EN_REG) & UART_EN_BIT) != 0u, "UART clock not enabled");
    sim_check(field(GPIO, 2u * TX, 2u) == 2u, "TX pin %u not in alternate-function mode", TX);
    sim_check(field(GPIO, 2u * RX, 2u) == 2u, "RX pin %u not in alternate-function mode", RX);
    uintptr_t af_tx = TX < 8u ? GPIO + 0x20u : GPIO + 0x24u;
    uintptr_t af_rx = RX < 8u ? GPIO + 0x20u : GPIO + 0x24u;
    sim_check(field(af_tx, 4u * (TX % 8u), 4u) == AF, "TX pin %u: AF%u, expected AF%u", TX,
              field(af_tx, 4u * (TX % 8u), 4u), AF);
    sim_check(field(af_rx, 4u * (RX % 8u), 4u) == AF, "RX pin %u: AF%u, expected AF%u", RX,
              field(af_rx, 4u * (RX % 8u), 4u), AF);
    uint32_t cr1 = sim_peek(CR1);
    sim_check((cr1 & 0xDu) == 0xDu, "CR1 = 0x%08X: UE, TE and RE must be set", cr1);
    sim_check((cr1 & ((1u << 12) | (1u << 28) | (1u << 10))) == 0u, "CR1 = 0x%08X: not 8 data bits / no parity", cr1);
    sim_check(field(CR2, 12u, 2u) == 0u, "CR2: not one stop bit");
    sim_check((sim_peek(CR3) & (1u << 12)) != 0u, "CR3.OVRDIS not set");
    sim_check((sim_peek(CR3) & 0x300u) == 0u, "CR3: hardware flow control enabled");
    uint32_t brr = sim_peek(BRR);
    double fck;
#if defined(MCU_DC_BSP_VARIANT_STM32F7)
    fck = 16e6; /* HSI reset clock, APB1 /1, USART3SEL = PCLK1 */
#elif defined(MCU_DC_BSP_VARIANT_STM32H7)
    fck = 64e6; /* HSI 64 MHz, HSIDIV /1 after reset, rcc_pclk1 */
#else
    uint32_t sel = field(RCC_CCIPR, 10u, 2u);
    int hsi_ok = (sim_peek(RCC_CR) & (1u << 10)) != 0u;
    fck = sel == 2u && hsi_ok ? 16e6 : sel == 0u || sel == 1u ? 4e6 : 0.0; /* HSI16, or MSI 4 MHz */
    sim_check(sel == 2u && hsi_ok, "LPUART1 kernel clock: LPUART1SEL %u, HSIRDY %d (expected HSI16)", sel, hsi_ok);
    sim_check((sim_peek(PWR_EN_REG) & PWR_EN_BIT) != 0u, "PWR clock (PWREN) not enabled");
    sim_check((sim_peek(PWR_CR2) & (1u << 9)) != 0u, "PWR_CR2.IOSV not set: port G pins stay isolated");
#endif
    if (brr == 0u || fck == 0.0) {
        sim_fail("BRR = %u with a %.0f Hz kernel clock", brr, fck);
        return;
    }
#if LPUART
    sim_check(brr >= 0x300u && brr <= 0xFFFFFu, "LPUART BRR 0x%X outside 0x300..0xFFFFF", brr);
    sim_check_baud("LPUART1", 256.0 * fck / brr);
#else
    sim_check_baud("USART3", fck / brr);
#endif
}
