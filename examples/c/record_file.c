/* Records a call from a file through the C API and prints the finished and available action
 * results, one JSON line each (like `callrec record`).
 *
 *   record_file INPUT [--other OTHER] [--store DIR] [--options JSON] [--codec alaw|ulaw]
 *               [--config JSON]
 *
 * --config is the engine configuration, e.g. '{"publish":"s3://recordings/calls"}'.
 *
 * INPUT is a G.711 WAV (A-law or µ-law), or raw G.711 in --codec (default alaw). With
 * --other, OTHER is the other party of the call (the same law): both are recorded as one
 * two-leg recording (a stereo file, or "legs":"mixed"), as `callrec record --other` does.
 * Build: gcc -std=c11 -I include examples/c/record_file.c target/release/libcallrec_ffi.a \
 *          -lpthread -ldl -lm -o record_file
 */
#define _POSIX_C_SOURCE 200809L
#include "callrec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(const char *what, callrec_result r) {
    fprintf(stderr, "record_file: %s: %s\n", what, callrec_result_name(r));
    return 1;
}

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* Finds the audio of a G.711 WAV; returns 0 and sets *codec, *audio, *len, or -1 if not one. */
static int g711_wav(uint8_t *file, size_t size, uint32_t *codec, uint8_t **audio, size_t *len) {
    if (size < 12 || memcmp(file, "RIFF", 4) != 0 || memcmp(file + 8, "WAVE", 4) != 0) return -1;
    uint32_t tag = 0;
    for (size_t at = 12; at + 8 <= size;) {
        uint32_t chunk = le32(file + at + 4);
        if (memcmp(file + at, "fmt ", 4) == 0 && at + 10 <= size) tag = file[at + 8] | file[at + 9] << 8;
        if (memcmp(file + at, "data", 4) == 0) {
            if (tag != 6 && tag != 7) return -1;
            *codec = tag == 6 ? CALLREC_CODEC_ALAW : CALLREC_CODEC_ULAW;
            *audio = file + at + 8;
            *len = chunk <= size - at - 8 ? chunk : size - at - 8;
            return 0;
        }
        at += 8 + (size_t)chunk + (chunk & 1);
    }
    return -1;
}

/* Reads a whole input file; returns its audio (a G.711 WAV's data, or the raw bytes) in *audio
   and *len, and the file to free in *file; sets *codec for a WAV. 0, or -1 after a message. */
static int load(const char *path, uint32_t *codec, uint8_t **file, uint8_t **audio, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    *file = malloc(size > 0 ? (size_t)size : 1);
    size_t got = fread(*file, 1, (size_t)size, f);
    fclose(f);
    *audio = *file;
    *len = got;
    g711_wav(*file, got, codec, audio, len); /* not a G.711 WAV: raw G.711 in --codec */
    return 0;
}

int main(int argc, char **argv) {
    const char *input = NULL, *other_input = NULL, *store = "recordings", *options = "{}", *config = "";
    uint32_t codec = CALLREC_CODEC_ALAW;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--store") && i + 1 < argc) store = argv[++i];
        else if (!strcmp(argv[i], "--options") && i + 1 < argc) options = argv[++i];
        else if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--other") && i + 1 < argc) other_input = argv[++i];
        else if (!strcmp(argv[i], "--codec") && i + 1 < argc) {
            const char *c = argv[++i];
            codec = !strcmp(c, "ulaw") ? CALLREC_CODEC_ULAW : !strcmp(c, "alaw") ? CALLREC_CODEC_ALAW : 0;
        } else if (!input) input = argv[i];
        else input = NULL, i = argc;
    }
    if (!input) {
        fprintf(stderr, "usage: record_file INPUT [--other OTHER] [--store DIR] [--options JSON] "
                        "[--codec alaw|ulaw] [--config JSON]\n");
        return 2;
    }
    uint8_t *file = NULL, *audio = NULL, *other_file = NULL, *other_audio = NULL;
    size_t len = 0, other_len = 0;
    uint32_t other_codec = codec; /* --codec: the law of a raw input */
    if (load(input, &codec, &file, &audio, &len) != 0) return 2;
    if (other_input) {
        if (load(other_input, &other_codec, &other_file, &other_audio, &other_len) != 0) return free(file), 2;
        if (other_codec != codec) {
            fprintf(stderr, "record_file: %s and %s are in different G.711 laws\n", input, other_input);
            return free(file), free(other_file), 2;
        }
    }

    callrec_engine *engine = NULL;
    callrec_recorder *rec = NULL, *other = NULL;
    char why[512];
    callrec_result r = callrec_engine_new(store, strlen(store), config, strlen(config), why, sizeof why, NULL,
                                         &engine);
    if (r != CALLREC_RESULT_OK)
        return fprintf(stderr, "record_file: %s\n", why), free(file), free(other_file), fail("engine", r);
    if (other_input) /* both parties: two recorders, one recording */
        r = callrec_call_new(engine, options, strlen(options), codec, why, sizeof why, NULL, &rec, &other);
    else
        r = callrec_recorder_new(engine, options, strlen(options), codec, why, sizeof why, NULL, &rec);
    if (r == CALLREC_RESULT_INVALID_OPTIONS) {
        fprintf(stderr, "record_file: %s\n", why);
        callrec_engine_free(engine);
        free(file);
        free(other_file);
        return 2;
    }
    if (r != CALLREC_RESULT_OK) return callrec_engine_free(engine), free(file), free(other_file), fail("record", r);

    /* The media loop: 20 ms frames, as fast as the writer takes them. */
    callrec_status st = {CALLREC_PHASE_WAITING, CALLREC_REASON_NONE};
    uint8_t beep[160];
    for (size_t at = 0; (at < len || at < other_len) && st.phase != CALLREC_PHASE_STOPPED; at += 160) {
        size_t n = at < len ? (len - at < 160 ? len - at : 160) : 0, played;
        size_t other_n = at < other_len ? (other_len - at < 160 ? other_len - at : 160) : 0;
        size_t until = at + (n > other_n ? n : other_n);
        callrec_recorder_playout(rec, beep, sizeof beep, &played); /* would go to the caller */
        /* A file is faster than real time: feed waits for the writer (up to 60 s) instead of
           overflowing the ring. A real-time media thread would call callrec_recorder_push. A
           party whose audio has ended is moved on with the call's time (a gap, filled with
           silence), as a media server's clock moves on a leg whose packets stopped. */
        if (n > 0) r = callrec_recorder_feed(rec, audio + at, n, 60000, NULL, &st);
        else r = callrec_recorder_push_at(rec, until, NULL, 0, &st);
        if (r != CALLREC_RESULT_OK) break;
        if (!other || st.phase == CALLREC_PHASE_STOPPED) continue;
        if (other_n > 0) r = callrec_recorder_feed(other, other_audio + at, other_n, 60000, NULL, &st);
        else r = callrec_recorder_push_at(other, until, NULL, 0, &st);
        if (r != CALLREC_RESULT_OK) break;
    }
    if (st.phase != CALLREC_PHASE_STOPPED) callrec_recorder_hangup(rec, &st); /* input ended */
    callrec_recorder_free(rec);
    callrec_recorder_free(other); /* NULL: a no-op */
    free(file);
    free(other_file);

    /* The control loop: print finished, then available (or only finished on error). */
    int status = 0;
    for (;;) {
        callrec_event *ev = NULL;
        callrec_event_info info;
        if ((r = callrec_engine_next_event(engine, 60000, &ev)) != CALLREC_RESULT_OK) {
            status = fail("event", r);
            break;
        }
        size_t need = 0, n = 0;
        callrec_event_json_len(ev, &need);
        char *json = malloc(need + 1);
        callrec_event_json(ev, json, need + 1, &n);
        callrec_event_get_info(ev, &info);
        printf("%s\n", json);
        fflush(stdout); /* a reader sees each event as it comes */
        free(json);
        callrec_event_free(ev);
        if (info.kind == CALLREC_EVENT_AVAILABLE || info.reason == CALLREC_REASON_ERROR) break;
    }
    callrec_engine_free(engine);
    return status;
}
