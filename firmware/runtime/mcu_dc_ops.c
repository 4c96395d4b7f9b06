/*
 * The op registry (C side): one entry per op code, the twin of mcu_dc/core/ops/ in
 * Python. The model walker (mcu_dc_model.c) validates and runs every op through this
 * table and names none. Adding an op: one C file defining its mcu_dc_op_impl_t (derive,
 * validate, scratch_size, run, run_ref), and its two lines here (docs/adding_an_op.md).
 */
#include "mcu_dc_internal.h"

extern const mcu_dc_op_impl_t mcu_dc_op_conv2d;           /* mcu_dc_conv.c */
extern const mcu_dc_op_impl_t mcu_dc_op_depthwise_conv2d; /* mcu_dc_conv.c */
extern const mcu_dc_op_impl_t mcu_dc_op_fc;               /* mcu_dc_fc.c */
extern const mcu_dc_op_impl_t mcu_dc_op_maxpool2d;        /* mcu_dc_pool.c */
extern const mcu_dc_op_impl_t mcu_dc_op_avgpool2d;        /* mcu_dc_pool.c */
extern const mcu_dc_op_impl_t mcu_dc_op_add;              /* mcu_dc_add.c */

/* Indexed by op code (C99 designated initializers: the generated codes, in any order). */
static const mcu_dc_op_impl_t *const mcu_dc_op_table[] = {
    [MCU_DC_OP_CONV2D] = &mcu_dc_op_conv2d,
    [MCU_DC_OP_FC] = &mcu_dc_op_fc,
    [MCU_DC_OP_MAXPOOL2D] = &mcu_dc_op_maxpool2d,
    [MCU_DC_OP_DEPTHWISE_CONV2D] = &mcu_dc_op_depthwise_conv2d,
    [MCU_DC_OP_AVGPOOL2D] = &mcu_dc_op_avgpool2d,
    [MCU_DC_OP_ADD] = &mcu_dc_op_add,
};

const mcu_dc_op_impl_t *mcu_dc_op_impl(uint32_t op)
{
    return op < sizeof mcu_dc_op_table / sizeof mcu_dc_op_table[0] ? mcu_dc_op_table[op] : 0;
}
