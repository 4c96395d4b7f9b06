/*
 * Cortex-M core registers: DWT cycle counter (ARMv7-M ARM DDI 0403E §C1.8: DWT_CTRL
 * 0xE0001000 CYCCNTENA bit 0, DWT_CYCCNT 0xE0001004, DWT_LAR 0xE0001FB0; DEMCR 0xE000EDFC
 * TRCENA bit 24) and SysTick (ARMv6-M ARM DDI 0419E §B3.3: SYST_CSR 0xE000E010, SYST_RVR
 * 0xE000E014, SYST_CVR 0xE000E018; ICSR 0xE000ED04).
 */
#include "sim.h"

#define DEMCR 0xE000EDFCu
#define DWT_CTRL 0xE0001000u
#define DWT_CYCCNT 0xE0001004u
#define DWT_LAR 0xE0001FB0u
#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u
#define ICSR 0xE000ED04u

void cortexm_setup(int dwt, int systick)
{
    if (dwt) {
        sim_add(DEMCR, "DEMCR", 0u);
        sim_add(DWT_CTRL, "DWT_CTRL", 0x40000000u);
        sim_add(DWT_CYCCNT, "DWT_CYCCNT", 0u);
        sim_add(DWT_LAR, "DWT_LAR", 0u);
    }
    if (systick) {
        sim_add(SYST_CSR, "SYST_CSR", 0u);
        sim_add(SYST_RVR, "SYST_RVR", 0u);
        sim_add(SYST_CVR, "SYST_CVR", 0u);
        sim_add(ICSR, "ICSR", 0u);
    }
}

/* Before an access: counters advance with time. Returns 1 when it handled the register. */
int cortexm_access(struct sim_reg *r)
{
    if (r->addr == DWT_CYCCNT) {
        if ((sim_peek(DEMCR) & (1u << 24)) != 0u && (sim_peek(DWT_CTRL) & 1u) != 0u) {
            r->value += 17u;
        }
        return 1;
    }
    if (r->addr == SYST_CVR) {
        if ((sim_peek(SYST_CSR) & 1u) != 0u) {
            r->value = (r->value - 5u) & 0x00FFFFFFu;
        }
        return 1;
    }
    return 0;
}

void cortexm_check_init(int dwt, int systick)
{
    if (dwt) {
        sim_check((sim_peek(DEMCR) & (1u << 24)) != 0u, "DEMCR.TRCENA not set");
        sim_check((sim_peek(DWT_CTRL) & 1u) != 0u, "DWT_CTRL.CYCCNTENA not set");
    }
    if (systick) {
        sim_check(sim_peek(SYST_CSR) == 7u, "SYST_CSR = 0x%X, expected 7 (enable, tick interrupt, CPU clock)",
                  sim_peek(SYST_CSR));
        sim_check(sim_peek(SYST_RVR) == 0x00FFFFFFu, "SYST_RVR = 0x%X, expected 0xFFFFFF", sim_peek(SYST_RVR));
    }
}
