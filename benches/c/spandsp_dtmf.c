/* SpanDSP's dtmf_rx on the same Q.24 battery and talk-off corpus as callrec's detector
 * (core/tests/data/dtmf, made by scripts/gen-dtmf-battery and scripts/gen-dtmf-talkoff), for
 * the side-by-side table in BENCHMARKS.md. Prints what benches/src/bin/dtmf_compare.rs prints:
 *
 *   battery_passed P/N   cases whose digits are exactly the expected ones (through A-law)
 *   talkoff_speech S     digits reported in the speech pieces
 *   talkoff_music M      digits reported in the music pieces
 *   ns_per_frame T       median of 21 timed passes over the talk-off corpus, per 160 samples
 *                        (A-law decode included, as callrec's detector decodes too)
 *
 * Each case and piece gets a fresh detector with SpanDSP's defaults (dtmf_rx_init).
 * Build: gcc -O2 -std=c11 benches/c/spandsp_dtmf.c -lspandsp -lm -o spandsp_dtmf
 * Run from the repository root. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tiffio.h>
#include <spandsp.h>

#define DIR "core/tests/data/dtmf/"

#include "timing.h"

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) exit(2);
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static char got[64];
static size_t got_len;

static void on_digits(void *user, const char *digits, int len) {
    (void)user;
    for (int i = 0; i < len && got_len + 1 < sizeof got; i++) got[got_len++] = digits[i];
    got[got_len] = 0;
}

/* Runs a fresh dtmf_rx over `n` samples; the digits land in `got`. */
static void run(const int16_t *pcm, size_t n) {
    got_len = 0;
    got[0] = 0;
    dtmf_rx_state_t *s = dtmf_rx_init(NULL, on_digits, NULL);
    for (size_t at = 0; at < n; at += 160) dtmf_rx(s, pcm + at, (int)(n - at < 160 ? n - at : 160));
    /* A tone running into the end: flush with silence so the digit is reported. */
    static const int16_t silence[800];
    dtmf_rx(s, silence, 800);
    dtmf_rx_free(s);
}

int main(void) {
    size_t len;
    uint8_t *raw = slurp(DIR "battery.s16", &len);
    size_t samples = len / 2;
    int16_t *pcm = malloc(samples * sizeof *pcm);
    for (size_t i = 0; i < samples; i++) {
        int16_t s = (int16_t)(raw[2 * i] | raw[2 * i + 1] << 8);
        pcm[i] = alaw_to_linear(linear_to_alaw(s)); /* through G.711, as callrec sees it */
    }
    char *tsv = (char *)slurp(DIR "battery.tsv", &len);
    int cases = 0, passed = 0;
    for (char *line = strtok(tsv, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char name[128], expected[64];
        unsigned long first, n;
        if (sscanf(line, "%127[^\t]\t%63[^\t]\t%lu\t%lu", name, expected, &first, &n) != 4) return 2;
        if (!strcmp(expected, "-")) expected[0] = 0;
        run(pcm + first, n);
        cases++;
        passed += !strcmp(got, expected);
    }
    printf("battery_passed %d/%d\n", passed, cases);

    uint8_t *alaw = slurp(DIR "talkoff.alaw", &len);
    size_t talk = len;
    int16_t *tpcm = malloc(talk * sizeof *tpcm);
    for (size_t i = 0; i < talk; i++) tpcm[i] = alaw_to_linear(alaw[i]);
    char *ttsv = (char *)slurp(DIR "talkoff.tsv", &len);
    int speech = 0, music = 0;
    for (char *line = strtok(ttsv, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char name[128], kind[32];
        unsigned long first, n;
        if (sscanf(line, "%127[^\t]\t%31[^\t]\t%lu\t%lu", name, kind, &first, &n) != 4) return 2;
        run(tpcm + first, n);
        if (!strcmp(kind, "speech")) speech += (int)got_len;
        else music += (int)got_len;
    }
    printf("talkoff_speech %d\ntalkoff_music %d\n", speech, music);

    /* Speed: A-law decode + dtmf_rx per 160-sample frame over the whole corpus. */
    size_t frames = talk / 160;
    double per[21];
    int16_t frame[160];
    for (int p = 0; p < 21; p++) {
        dtmf_rx_state_t *s = dtmf_rx_init(NULL, on_digits, NULL);
        got_len = 0;
        double t0 = now_ns();
        for (size_t f = 0; f < frames; f++) {
            for (int i = 0; i < 160; i++) frame[i] = alaw_to_linear(alaw[f * 160 + i]);
            dtmf_rx(s, frame, 160);
        }
        per[p] = (now_ns() - t0) / (double)frames;
        dtmf_rx_free(s);
    }
    qsort(per, 21, sizeof per[0], cmp);
    printf("ns_per_frame %.1f\n", per[10]);
    return 0;
}
