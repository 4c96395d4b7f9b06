/*
 * Host simulation of an mcu_dc BSP (tests/boards/test_bsp_sim.py).
 *
 * The BSP is compiled for the host with -DMCU_DC_BSP_HOST_SIM, so every MCU_DC_REG32(addr)
 * calls mcu_dc_sim_reg(addr) (firmware/bsp/cortexm/mcu_dc_bsp_config.h). The core (sim_core.c)
 * keeps a register file of the addresses a peripheral model declared -- any other address is
 * a test failure -- and lets the model act around each access: model_access() before it
 * (compute a status register, offer a received byte), model_settle() after it, when the
 * BSP's pointer access has happened: a changed value is a write (a task triggered, a byte to
 * transmit), an unchanged one a read. Time advances one step per register access; received
 * bytes arrive on the line every `interval` steps.
 */
#ifndef MCU_DC_BSP_SIM_H
#define MCU_DC_BSP_SIM_H

#include <stddef.h>
#include <stdint.h>

#define SIM_SENTINEL 0x5EA5EA5Eu /* put in write-detect registers; BSPs never write it */

struct sim_reg {
    uintptr_t addr;
    const char *name;
    uint32_t value;
    uint32_t snapshot;  /* value handed to the BSP at the start of the access */
    int detect;         /* write-detect register (task, data, clear alias): model_access sets it */
    uintptr_t gate;     /* 0, or the address of a clock-enable / reset register */
    uint32_t gate_mask; /* bits of `gate` that must be set (gate_set) or clear (!gate_set) */
    int gate_set;
    unsigned writes;    /* writes seen (value changed) */
};

/* core -> model */
struct sim_reg *sim_add(uintptr_t addr, const char *name, uint32_t reset);
void sim_set_detect(struct sim_reg *r);
void sim_set_gate(struct sim_reg *r, uintptr_t gate, uint32_t mask, int must_be_set);
struct sim_reg *sim_find(uintptr_t addr);
uint32_t sim_peek(uintptr_t addr); /* value without side effects */
void sim_poke(uintptr_t addr, uint32_t value);
void sim_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sim_check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_tx(uint8_t byte);   /* a byte left on the TX line */
uint64_t sim_now(void);      /* register accesses so far */
volatile void *sim_dma(uint32_t bus_addr, uint32_t len); /* EasyDMA bus address -> host memory */
void sim_check_baud(const char *what, double actual_baud);

/* model -> core: implemented by each model_<family>.c */
void model_setup(void);
void model_access(struct sim_reg *r);
void model_settle(struct sim_reg *r, int written);
int model_rx(uint8_t byte); /* 1 accepted, 0 lost */
void model_tick(void);
void model_check_init(void);
void model_set_tx_stall(int on);
extern const unsigned model_getc_accesses; /* register accesses of a getc() returning a byte */
extern const unsigned model_rx_fifo;       /* bytes the receiver holds without the CPU */

/* Cortex-M core registers shared by the models (model_cortexm.c) */
void cortexm_setup(int dwt, int systick);
int cortexm_access(struct sim_reg *r);
void cortexm_check_init(int dwt, int systick);

#endif
