/*
 * Host runner: loads ANY model blob (or .mcudc file) at run time and runs it on raw
 * inputs from stdin, so thousands of models are checked against the simulator with one
 * compiled binary. Host-only (uses stdio and malloc; the runtime itself uses neither).
 *
 *   mcu_dc_runner [--ref] [--no-crc] [--arena-bytes N] [--info] MODEL_FILE < inputs > outputs
 *
 * stdin: input_len bytes per input, until EOF (raw bytes for a UINT8-input model; the int8
 * values as bytes for an INT8-input model: mcu_dc.core.simulator.device_input gives them);
 * stdout: output_len int8 bytes per input. --info prints the model's sizes as JSON.
 * Exit codes: 0 ok; 1 I/O or usage error; 3 a runtime status error (stderr names it as
 * "status=N NAME"); 4 stdin ended inside an input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcu_dc.h"

static int fail_status(const char *what, mcu_dc_status_t st)
{
    fprintf(stderr, "mcu_dc_runner: %s failed: status=%d %s\n", what, (int)st, mcu_dc_status_name(st));
    return 3;
}

static uint8_t *read_file(const char *path, uint32_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    if (f == NULL) return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    buf = (uint8_t *)malloc((size_t)n + 4u); /* malloc is suitably (>= 4) aligned */
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = (uint32_t)n;
    return buf;
}

int main(int argc, char **argv)
{
    int ref = 0, check_crc = 1, info = 0, i, rc = 0;
    long arena_override = -1;
    const char *path = NULL;
    uint8_t *blob, *in;
    int8_t *out;
    void *arena;
    uint32_t blob_len = 0u, in_len, out_len, arena_bytes;
    unsigned long count = 0ul;
    mcu_dc_model_t m;
    mcu_dc_status_t st;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ref") == 0) {
            ref = 1;
        } else if (strcmp(argv[i], "--no-crc") == 0) {
            check_crc = 0;
        } else if (strcmp(argv[i], "--info") == 0) {
            info = 1;
        } else if (strcmp(argv[i], "--arena-bytes") == 0 && i + 1 < argc) {
            arena_override = strtol(argv[++i], NULL, 10);
        } else if (path == NULL && argv[i][0] != '-') {
            path = argv[i];
        } else {
            path = NULL;
            break;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "usage: mcu_dc_runner [--ref] [--no-crc] [--arena-bytes N] [--info] MODEL_FILE\n");
        return 1;
    }
    blob = read_file(path, &blob_len);
    if (blob == NULL) {
        fprintf(stderr, "mcu_dc_runner: cannot read %s\n", path);
        return 1;
    }
    st = mcu_dc_model_init(&m, blob, blob_len);
    if (st != MCU_DC_OK) {
        free(blob);
        return fail_status("mcu_dc_model_init", st);
    }
    if (check_crc && (st = mcu_dc_model_check_crc(&m)) != MCU_DC_OK) {
        free(blob);
        return fail_status("mcu_dc_model_check_crc", st);
    }
    in_len = mcu_dc_input_len(&m);
    out_len = mcu_dc_output_len(&m);
    arena_bytes = arena_override >= 0 ? (uint32_t)arena_override : mcu_dc_arena_size(&m);
    if (info) {
        printf("{\"input_len\": %lu, \"output_len\": %lu, \"arena_bytes\": %lu, \"hash\": %lu, "
               "\"input_kind\": %d, \"format_version\": %lu}\n",
               (unsigned long)in_len, (unsigned long)out_len, (unsigned long)mcu_dc_arena_size(&m),
               (unsigned long)mcu_dc_model_hash(&m), (int)mcu_dc_input_kind(&m), (unsigned long)m.version);
        free(blob);
        return 0;
    }
    in = (uint8_t *)malloc(in_len);
    out = (int8_t *)malloc(out_len);
    arena = malloc(arena_bytes > 0u ? arena_bytes : 1u);
    if (in == NULL || out == NULL || arena == NULL) {
        fprintf(stderr, "mcu_dc_runner: out of memory\n");
        rc = 1;
    }
    while (rc == 0) {
        size_t got = fread(in, 1, in_len, stdin);
        if (got == 0u) break;
        if (got != in_len) {
            fprintf(stderr, "mcu_dc_runner: stdin ended inside input #%lu: got %lu of %lu bytes\n", count,
                    (unsigned long)got, (unsigned long)in_len);
            rc = 4;
            break;
        }
        st = ref ? mcu_dc_infer_ref(&m, in, out, arena, arena_bytes) : mcu_dc_infer(&m, in, out, arena, arena_bytes);
        if (st != MCU_DC_OK) {
            fprintf(stderr, "mcu_dc_runner: input #%lu: ", count);
            rc = fail_status("mcu_dc_infer", st);
            break;
        }
        if (fwrite(out, 1, out_len, stdout) != out_len) {
            fprintf(stderr, "mcu_dc_runner: cannot write to stdout\n");
            rc = 1;
        }
        count++;
    }
    free(in);
    free(out);
    free(arena);
    free(blob);
    return rc;
}
