/*
 * Text output for the mcu_dc demo firmware (see mcu_dc_demo_text.h).
 */
#include "mcu_dc_demo_text.h"

#include "mcu_dc_bsp.h"

uint32_t mcu_dc_demo_fmt_u32(char *buf, uint32_t value)
{
    char rev[10];
    uint32_t n = 0u;
    uint32_t i;

    do {
        rev[n++] = (char)('0' + (int)(value % 10u));
        value /= 10u;
    } while (value != 0u);
    for (i = 0u; i < n; ++i) {
        buf[i] = rev[n - 1u - i];
    }
    buf[n] = '\0';
    return n;
}

uint32_t mcu_dc_demo_fmt_i32(char *buf, int32_t value)
{
    /* The magnitude as unsigned: -INT32_MIN does not fit an int32_t. */
    uint32_t magnitude = value < 0 ? (uint32_t)0u - (uint32_t)value : (uint32_t)value;

    if (value < 0) {
        buf[0] = '-';
        return 1u + mcu_dc_demo_fmt_u32(buf + 1, magnitude);
    }
    return mcu_dc_demo_fmt_u32(buf, magnitude);
}

uint32_t mcu_dc_demo_fmt_hex32(char *buf, uint32_t value)
{
    static const char digits[] = "0123456789abcdef";
    uint32_t i;

    buf[0] = '0';
    buf[1] = 'x';
    for (i = 0u; i < 8u; ++i) {
        buf[2u + i] = digits[(value >> (28u - 4u * i)) & 0xFu];
    }
    buf[10] = '\0';
    return 10u;
}

void mcu_dc_demo_puts(const char *text)
{
    uint32_t n = 0u;

    while (text[n] != '\0') {
        ++n;
    }
    if (n > 0u) {
        mcu_dc_bsp_write((const uint8_t *)text, n);
    }
}

void mcu_dc_demo_put_u32(uint32_t value)
{
    char buf[12];
    uint32_t n = mcu_dc_demo_fmt_u32(buf, value);

    mcu_dc_bsp_write((const uint8_t *)buf, n);
}

void mcu_dc_demo_put_i32(int32_t value)
{
    char buf[12];
    uint32_t n = mcu_dc_demo_fmt_i32(buf, value);

    mcu_dc_bsp_write((const uint8_t *)buf, n);
}

void mcu_dc_demo_put_hex32(uint32_t value)
{
    char buf[11];
    uint32_t n = mcu_dc_demo_fmt_hex32(buf, value);

    mcu_dc_bsp_write((const uint8_t *)buf, n);
}
