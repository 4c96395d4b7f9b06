/*
 * mcu_dc boot stage 2 for the RP2040 (Raspberry Pi Pico): the source of mcu_dc_boot2.c.
 * Regenerate that file with `python3 mcu_dc/deploy/boot2.py` after editing this one.
 *
 * RP2040 Datasheet §2.8.1 (processor-controlled boot sequence): the bootrom reads the first
 * 256 bytes of flash with 03h serial reads into SRAM (0x20041F00), checks the CRC32 in the
 * last 4 bytes over the first 252 (polynomial 0x04C11DB7, init 0xFFFFFFFF, no reflection,
 * no final XOR, stored little-endian; §2.8.1.3.1) and jumps to the first byte in Thumb state.
 * This code therefore runs from SRAM and must be position independent: it uses only
 * PC-relative literal loads (the object has no relocations; boot2.py checks that).
 *
 * It configures the XIP SSI (§4.10, base 0x18000000) for the plain 03h serial read that any
 * SPI NOR flash supports, then enters the image: VTOR = 0x10000100, MSP = its word 0,
 * branch to its word 1 (the reset handler). SSI registers: CTRLR0 0x00 (DFS_32 bits 20:16,
 * SPI_FRF bits 22:21, TMOD bits 9:8), CTRLR1 0x04 (NDF), SSIENR 0x08, BAUDR 0x14, SPI_CTRLR0
 * 0xF4 (XIP_CMD bits 31:24, INST_L bits 9:8, ADDR_L bits 5:2 in 4-bit units, TRANS_TYPE
 * bits 1:0). With INST_L = 0 the SSI sends XIP_CMD as the top byte of a 32-bit address
 * frame: 03h + 24-bit address, then one 32-bit data frame. Cortex-M0+ VTOR: 0xE000ED08.
 */
    .syntax unified
    .cpu cortex-m0plus
    .thumb
    .text
    .global mcu_dc_boot2_entry
    .type mcu_dc_boot2_entry, %function
    .thumb_func
mcu_dc_boot2_entry:
    ldr  r3, =0x18000000      @ XIP_SSI base
    movs r0, #0
    str  r0, [r3, #0x08]      @ SSIENR = 0: the SSI is configurable only while disabled
    movs r0, #4
    str  r0, [r3, #0x14]      @ BAUDR = 4: SCK = clk_sys / 4 (<= 33 MHz up to 133 MHz clk_sys)
    ldr  r0, =0x001F0300      @ CTRLR0: SPI_FRF 0 (standard SPI), DFS_32 31 (32-bit), TMOD 3 (EEPROM read)
    str  r0, [r3, #0x00]
    movs r0, #0
    str  r0, [r3, #0x04]      @ CTRLR1: NDF 0 = one data frame per XIP access
    ldr  r0, =0x03000020      @ SPI_CTRLR0: XIP_CMD 0x03, INST_L 0, ADDR_L 8 (32 bits), TRANS_TYPE 0
    ldr  r1, =0x180000F4
    str  r0, [r1]
    movs r0, #1
    str  r0, [r3, #0x08]      @ SSIENR = 1: XIP reads of 0x10000000.. now work
    ldr  r0, =0x10000100      @ the image's vector table
    ldr  r1, =0xE000ED08      @ VTOR
    str  r0, [r1]
    ldr  r1, [r0, #0]         @ initial stack pointer
    ldr  r2, [r0, #4]         @ reset handler (Thumb bit set)
    msr  msp, r1
    bx   r2
    .ltorg
    .size mcu_dc_boot2_entry, . - mcu_dc_boot2_entry
