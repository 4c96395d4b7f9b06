/*
 * The op registry (C side): one entry per op code, the twin of mcu_dc/core/ops/ in
 * Python. The model walker (mcu_dc_model.c) validates and runs every op through this
 * table and names none. Adding an op: one C file defining its mcu_dc_op_impl_t (derive,
 * validate, scratch_size, run, run_ref); the generated X-list mcu_dc_op_list.h names it
 * (docs/adding_an_op.md).
 *
 * mcu_dc_op_list.h lists every op in the runtime's own copy; a generated project's copy
 * lists only the ops its models use, so the kernels of the others are never referenced
 * and --gc-sections drops them (a model needing an op this firmware lacks is refused by
 * mcu_dc_model_init with MCU_DC_ERR_UNKNOWN_OP).
 */
#include "mcu_dc_internal.h"
#include "mcu_dc_op_list.h"

#define MCU_DC_OP_EXTERN(NAME, sym) extern const mcu_dc_op_impl_t mcu_dc_op_##sym;
MCU_DC_OP_LIST(MCU_DC_OP_EXTERN)
#undef MCU_DC_OP_EXTERN

/* Indexed by op code (C99 designated initializers: the generated codes, in any order). */
static const mcu_dc_op_impl_t *const mcu_dc_op_table[] = {
#define MCU_DC_OP_ENTRY(NAME, sym) [MCU_DC_OP_##NAME] = &mcu_dc_op_##sym,
    MCU_DC_OP_LIST(MCU_DC_OP_ENTRY)
#undef MCU_DC_OP_ENTRY
};

const mcu_dc_op_impl_t *mcu_dc_op_impl(uint32_t op)
{
    return op < sizeof mcu_dc_op_table / sizeof mcu_dc_op_table[0] ? mcu_dc_op_table[op] : 0;
}
