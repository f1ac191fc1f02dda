/* SpanDSP doing the same per-frame work as callrec, on the same frames (examples/hello.wav),
 * for the side-by-side table in BENCHMARKS.md. Prints "name ns_per_frame" lines: the median
 * of 21 timed passes over the whole call (each pass ~630 frames, repeated 200 times).
 *
 *   frame       G.711 decode + power meter over 160 samples + level in dBm0
 *               (callrec: analysis/frame, the per-frame work of Recorder::push)
 *   decode      G.711 A-law decode of 160 bytes            (callrec: g711/decode_frame)
 *   encode      linear to u-law, 160 samples                (callrec: g711/encode_frame)
 *   transcode   A-law to u-law, 160 bytes                   (callrec: g711/transcode_frame)
 *
 * Build: gcc -O2 -std=c11 benches/c/spandsp_bench.c -lspandsp -lm -o spandsp_bench
 * (SpanDSP's dtmf_rx is not compared: callrec has no in-band DTMF detector yet.) */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tiffio.h>
#include <spandsp.h>

#define FRAME 160
#define PASSES 21
#define REPEAT 200

#include "timing.h"

static volatile float sink_f;
static volatile int sink_i;

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "examples/hello.wav";
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 2;
    }
    static uint8_t file[1 << 21];
    size_t size = fread(file, 1, sizeof file, f);
    fclose(f);
    uint8_t *data = NULL;
    size_t len = 0;
    for (size_t at = 12; at + 8 <= size;) {
        uint32_t chunk = file[at + 4] | file[at + 5] << 8 | file[at + 6] << 16 | (uint32_t)file[at + 7] << 24;
        if (!memcmp(file + at, "data", 4)) {
            data = file + at + 8;
            len = chunk;
            break;
        }
        at += 8 + chunk + (chunk & 1);
    }
    if (!data) {
        fprintf(stderr, "%s: no data chunk\n", path);
        return 2;
    }
    size_t frames = len / FRAME;
    int16_t amp[FRAME];
    uint8_t out[FRAME];
    g711_state_t *alaw = g711_init(NULL, G711_ALAW);
    g711_state_t *ulaw = g711_init(NULL, G711_ULAW);
    power_meter_t meter;
    power_meter_init(&meter, 6);
    const char *names[] = {"frame", "decode", "encode", "transcode"};
    for (int which = 0; which < 4; which++) {
        double per_frame[PASSES];
        for (int pass = 0; pass < PASSES; pass++) {
            double start = now_ns();
            for (int r = 0; r < REPEAT; r++) {
                for (size_t i = 0; i < frames; i++) {
                    const uint8_t *frame = data + i * FRAME;
                    switch (which) {
                    case 0:
                        g711_decode(alaw, amp, frame, FRAME);
                        for (int k = 0; k < FRAME; k++) power_meter_update(&meter, amp[k]);
                        sink_f = power_meter_current_dbm0(&meter);
                        break;
                    case 1:
                        sink_i = g711_decode(alaw, amp, frame, FRAME);
                        break;
                    case 2:
                        for (int k = 0; k < FRAME; k++) out[k] = linear_to_ulaw(amp[k] + (int)i);
                        sink_i = out[i % FRAME];
                        break;
                    case 3:
                        sink_i = g711_transcode(alaw, out, frame, FRAME);
                        break;
                    }
                }
            }
            per_frame[pass] = (now_ns() - start) / ((double)REPEAT * frames);
        }
        qsort(per_frame, PASSES, sizeof per_frame[0], cmp);
        printf("%s %.2f\n", names[which], per_frame[PASSES / 2]);
    }
    g711_free(alaw);
    g711_free(ulaw);
    return 0;
}
