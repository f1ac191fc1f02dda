/* Exercises every exported function of callrec.h, including every error path, and checks the
 * results. Built by scripts/test with gcc -std=c11 -Wall -Wextra -Werror and run under
 * valgrind --error-exitcode=1 --leak-check=full. Prints "N passed, 0 failed". */
#define _POSIX_C_SOURCE 200809L
#include "callrec.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* Speech-like sound: twelve 20 ms frames of a 1 kHz square wave in A-law whose level rises and
 * falls by 14 dB over the 240 ms cycle like syllables (a steady tone is background to the
 * detector), taken in turn by LOUD(frame); and 20 ms of digital silence. */
static uint8_t loud_cycle[12][160], quiet[160];
#define LOUD(i) (loud_cycle[(i) % 12])

/* G.711 A-law of a 16-bit sample (ITU-T G.711), written here so this test makes its audio (the
 * speech-like cycle, DTMF keys) independently of callrec; equal to CPython audioop.lin2alaw for
 * every 16-bit input. */
static uint8_t alaw(int sample) {
    int sign = sample >= 0 ? 0x80 : 0x00;
    int magnitude = sample >= 0 ? sample : -sample - 1;
    if (magnitude > 32767) magnitude = 32767;
    int exponent = 7;
    for (int mask = 0x4000; exponent > 0 && !(magnitude & mask); mask >>= 1) exponent--;
    int mantissa = (magnitude >> (exponent == 0 ? 4 : exponent + 3)) & 0x0F;
    return (uint8_t)((sign | (exponent << 4) | mantissa) ^ 0x55);
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Feeds like a host reading faster than real time: waits for ring space, so nothing drops. */
static callrec_result push(callrec_recorder *r, const uint8_t *audio, size_t len, callrec_status *st) {
    size_t fed = 0;
    callrec_result res = callrec_recorder_feed(r, audio, len, 60000, &fed, st);
    if (res == CALLREC_RESULT_OK) CHECK(fed == len);
    return res;
}

static callrec_engine *new_engine(const char *root) {
    callrec_engine *e = NULL;
    EXPECT(callrec_engine_new(root, strlen(root), NULL, 0, NULL, 0, NULL, &e), CALLREC_RESULT_OK);
    return e;
}

static callrec_recorder *new_recorder(callrec_engine *e, const char *json, uint32_t codec) {
    callrec_recorder *r = NULL;
    char err[128] = "x";
    size_t err_len = 99;
    EXPECT(callrec_recorder_new(e, json, strlen(json), codec, err, sizeof err, &err_len, &r), CALLREC_RESULT_OK);
    CHECK(err[0] == 0 && err_len == 0);
    return r;
}

/* Takes the next event, checks its kind, and returns its info. */
static callrec_event_info take_event(callrec_engine *e, uint32_t kind, char *json, size_t json_cap) {
    callrec_event *ev = NULL;
    callrec_event_info info;
    memset(&info, 0, sizeof info);
    EXPECT(callrec_engine_next_event(e, 10000, &ev), CALLREC_RESULT_OK);
    if (!ev) return info;
    EXPECT(callrec_event_get_info(ev, &info), CALLREC_RESULT_OK);
    CHECK(info.kind == kind);
    size_t len = 0, got = 0;
    EXPECT(callrec_event_json_len(ev, &len), CALLREC_RESULT_OK);
    CHECK(len + 1 <= json_cap);
    /* Too small by one byte (no room for the NUL): nothing written. */
    json[0] = 'x';
    EXPECT(callrec_event_json(ev, json, len, &got), CALLREC_RESULT_BUFFER_TOO_SMALL);
    CHECK(json[0] == 'x' && got == len); /* only the needed length */
    EXPECT(callrec_event_json(ev, json, json_cap, &got), CALLREC_RESULT_OK);
    CHECK(got == len && strlen(json) == len);
    CHECK(strncmp(json, "{\"action\":\"record\",\"result\":{", 29) == 0);
    char name[256];
    EXPECT(callrec_event_filename(ev, name, sizeof name, &got), CALLREC_RESULT_OK);
    CHECK(strstr(json, name) != NULL && strncmp(name, "/rest_api/recordings/", 21) == 0);
    EXPECT(callrec_event_get_info(NULL, &info), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_event_get_info(ev, NULL), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_event_json_len(ev, NULL), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_event_json(NULL, json, json_cap, &got), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_event_filename(ev, NULL, 10, &got), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_event_free(ev), CALLREC_RESULT_OK);
    /* Double free and use after free of an event. */
    EXPECT(callrec_event_free(ev), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_event_get_info(ev, &info), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_event_json_len(ev, &len), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_event_json(ev, json, json_cap, &got), CALLREC_RESULT_INVALID_HANDLE);
    return info;
}

/* Reads the audio of the recording `name` (a filename from an event) under `root` into `out`
 * (at most `cap` bytes); returns its length, or -1. The WAV's data chunk is found by walking
 * the RIFF chunks, independently of callrec's own parser. */
static long read_audio(const char *root, const char *name, uint8_t *out, size_t cap) {
    char path[1024];
    snprintf(path, sizeof path, "%s%s", root, name);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    uint8_t head[12];
    long len = -1;
    if (fread(head, 1, 12, f) == 12 && memcmp(head, "RIFF", 4) == 0) {
        uint8_t chunk[8];
        while (fread(chunk, 1, 8, f) == 8) {
            uint32_t size = chunk[4] | chunk[5] << 8 | chunk[6] << 16 | (uint32_t)chunk[7] << 24;
            if (memcmp(chunk, "data", 4) == 0) {
                if (size <= cap && fread(out, 1, size, f) == size) len = (long)size;
                break;
            }
            fseek(f, (long)(size + (size & 1)), SEEK_CUR);
        }
    }
    fclose(f);
    return len;
}

/* Pause/resume with both behaviours: loud frames numbered by their first byte, 40 frames,
 * paused over frames 10..20; the file is the expected splice. A fixed threshold makes every
 * frame sound from the first (the adaptive detector takes a steady tone for background). */
static void pause_and_resume(callrec_engine *e, const char *root) {
    static const char *options[2] = {"{\"pause_behavior\":\"skip\",\"silence_threshold_db\":-40}",
                                     "{\"pause_behavior\":\"silence\",\"silence_threshold_db\":-40}"};
    static uint8_t input[40][160], want[40 * 160], got[40 * 160 + 1];
    char json[1024], name[512];
    for (int k = 0; k < 2; k++) {
        callrec_recorder *r = new_recorder(e, options[k], CALLREC_CODEC_ALAW);
        callrec_status st;
        size_t want_len = 0;
        for (int i = 0; i < 40; i++) {
            memcpy(input[i], LOUD(0), 160);
            input[i][0] = (uint8_t)(0x80 + i); /* makes every frame different */
            if (i == 10) {
                EXPECT(callrec_recorder_pause(r, &st), CALLREC_RESULT_OK);
                CHECK(st.phase == CALLREC_PHASE_RECORDING);
            }
            if (i == 20) EXPECT(callrec_recorder_resume(r, &st), CALLREC_RESULT_OK);
            EXPECT(push(r, input[i], 160, &st), CALLREC_RESULT_OK);
            if (i < 10 || i >= 20) {
                memcpy(want + want_len, input[i], 160);
            } else if (k == 1) {
                memset(want + want_len, 0xD5, 160); /* A-law silence */
            } else {
                continue;
            }
            want_len += 160;
        }
        EXPECT(callrec_recorder_pause(NULL, &st), CALLREC_RESULT_NULL_PARAMETER);
        EXPECT(callrec_recorder_resume(r, NULL), CALLREC_RESULT_NULL_PARAMETER);
        EXPECT(callrec_recorder_hangup(r, &st), CALLREC_RESULT_OK);
        callrec_event *ev = NULL;
        size_t got_len = 0;
        EXPECT(callrec_engine_next_event(e, 10000, &ev), CALLREC_RESULT_OK);
        if (ev) {
            EXPECT(callrec_event_filename(ev, name, sizeof name, &got_len), CALLREC_RESULT_OK);
            callrec_event_free(ev);
        }
        take_event(e, CALLREC_EVENT_AVAILABLE, json, sizeof json);
        long n = read_audio(root, name, got, sizeof got);
        CHECK(n == (long)want_len && memcmp(got, want, want_len) == 0);
        callrec_recorder_free(r);
        EXPECT(callrec_recorder_pause(r, &st), CALLREC_RESULT_INVALID_HANDLE);
        EXPECT(callrec_recorder_resume(r, &st), CALLREC_RESULT_INVALID_HANDLE);
    }
}

/* Both parties (callrec_call_new): the caller pushes 40 numbered loud frames; the other party's
 * first audio (10 frames) is placed at frame 10 with callrec_recorder_push_at, then it stops.
 * The stereo file's channel 1 is the caller's audio, channel 2 silence, the other's 10 frames,
 * silence (filled, counted in "samples_filled"). "caller" is refused with the field named. */
static void two_legs(callrec_engine *e, const char *root) {
    static uint8_t input[40][160], got[2 * 40 * 160 + 1];
    char json[2048] = "", name[512] = "", msg[256];
    size_t n = 0;
    callrec_recorder *caller = NULL, *other = NULL;
    callrec_status st;
    const char *one = "{\"legs\":\"caller\"}";
    EXPECT(callrec_call_new(e, one, strlen(one), CALLREC_CODEC_ALAW, msg, sizeof msg, &n, &caller, &other),
           CALLREC_RESULT_INVALID_OPTIONS);
    CHECK(strstr(msg, "legs") != NULL && n == strlen(msg) && caller == NULL && other == NULL);
    const char *both = "{\"silence_threshold_db\":-40}"; /* legs defaults to "both" */
    EXPECT(callrec_call_new(e, both, strlen(both), CALLREC_CODEC_ALAW, NULL, 0, NULL, NULL, &other),
           CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_call_new(e, both, strlen(both), CALLREC_CODEC_ALAW, NULL, 0, NULL, &caller, &caller),
           CALLREC_RESULT_NULL_PARAMETER);
    CHECK(caller == NULL);
    EXPECT(callrec_call_new(e, both, strlen(both), CALLREC_CODEC_ALAW, msg, sizeof msg, &n, &caller, &other),
           CALLREC_RESULT_OK);
    CHECK(caller != NULL && other != NULL && caller != other && n == 0);
    for (int i = 0; i < 40; i++) {
        memcpy(input[i], LOUD(0), 160);
        input[i][0] = (uint8_t)(0x80 + i);
        EXPECT(push(caller, input[i], 160, &st), CALLREC_RESULT_OK);
    }
    for (int i = 10; i < 20; i++) EXPECT(callrec_recorder_push_at(other, (uint64_t)i * 160, input[i], 160, &st),
                                         CALLREC_RESULT_OK);
    EXPECT(callrec_recorder_push_at(other, 0, NULL, 160, &st), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_recorder_push_at(other, 0, input[0], 160, NULL), CALLREC_RESULT_NULL_PARAMETER);
    /* An index more than a day ahead (a raw RTP timestamp, say) is refused, nothing changed. */
    EXPECT(callrec_recorder_push_at(other, UINT64_MAX, NULL, 0, &st), CALLREC_RESULT_INPUT_TOO_LONG);
    EXPECT(callrec_recorder_hangup(other, &st), CALLREC_RESULT_OK); /* either party ends the call */
    CHECK(st.phase == CALLREC_PHASE_STOPPED && st.reason == CALLREC_REASON_HANGUP);
    callrec_event *ev = NULL;
    size_t got_len = 0;
    EXPECT(callrec_engine_next_event(e, 10000, &ev), CALLREC_RESULT_OK);
    if (ev) {
        EXPECT(callrec_event_filename(ev, name, sizeof name, &got_len), CALLREC_RESULT_OK);
        EXPECT(callrec_event_json(ev, json, sizeof json, &got_len), CALLREC_RESULT_OK);
        callrec_event_free(ev);
    }
    CHECK(strstr(json, "\"other\":{\"contains_sound\":true,\"seconds_of_speech\":0.2,\"samples_filled\":4800,") !=
          NULL);
    take_event(e, CALLREC_EVENT_AVAILABLE, json, sizeof json);
    long len = read_audio(root, name, got, sizeof got);
    CHECK(len == 2 * 40 * 160);
    int channels_ok = len == 2 * 40 * 160;
    for (long k = 0; channels_ok && k < 40 * 160; k++) {
        uint8_t want_other = k >= 10 * 160 && k < 20 * 160 ? input[k / 160][k % 160] : 0xD5;
        channels_ok = got[2 * k] == input[k / 160][k % 160] && got[2 * k + 1] == want_other;
    }
    CHECK(channels_ok);
    EXPECT(callrec_recorder_free(caller), CALLREC_RESULT_OK);
    EXPECT(callrec_recorder_free(other), CALLREC_RESULT_OK);
    EXPECT(callrec_recorder_push_at(other, 0, input[0], 160, &st), CALLREC_RESULT_INVALID_HANDLE);
}

/* `ms` of a key's two tones (rows 697..941 Hz, columns 1209..1633 Hz) at about -10 dBm0. */
static size_t key_tone(uint8_t *out, double row, double col, int ms) {
    size_t n = (size_t)ms * 8;
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / 8000.0;
        out[i] = alaw((int16_t)(7200.0 * sin(2 * 3.141592653589793 * row * t) + 7200.0 * sin(2 * 3.141592653589793 * col * t)));
    }
    return n;
}

/* The standalone detector: "5" then "#" (each 100 ms, 100 ms apart), fed in odd pieces. */
static void dtmf_detector(void) {
    static uint8_t audio[8000];
    size_t n = 0;
    memset(audio, 0xD5, sizeof audio);
    n += 800; /* 100 ms of silence */
    n += key_tone(audio + n, 770, 1336, 100);
    n += 800;
    n += key_tone(audio + n, 941, 1477, 100);
    n += 800;
    callrec_dtmf *d = NULL;
    EXPECT(callrec_dtmf_new(99, &d), CALLREC_RESULT_INVALID_CODEC);
    EXPECT(callrec_dtmf_new(CALLREC_CODEC_ALAW, NULL), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_dtmf_new(CALLREC_CODEC_ALAW, &d), CALLREC_RESULT_OK);
    callrec_dtmf_event ev[8];
    char pressed[8] = {0}, released[8] = {0};
    size_t np = 0, nr = 0, got = 0;
    uint64_t starts[8] = {0}, ends[8] = {0};
    for (size_t at = 0; at < n; at += 77) {
        size_t len = n - at < 77 ? n - at : 77;
        /* Room for one event per call: the queue keeps the rest. */
        EXPECT(callrec_dtmf_process(d, audio + at, len, ev, 1, &got), CALLREC_RESULT_OK);
        for (size_t i = 0; i < got; i++) {
            if (ev[i].kind == CALLREC_DTMF_PRESSED && np < 7) pressed[np++] = ev[i].digit;
            if (ev[i].kind == CALLREC_DTMF_RELEASED && nr < 7) {
                starts[nr] = ev[i].start;
                ends[nr] = ev[i].end;
                released[nr++] = ev[i].digit;
            }
        }
    }
    EXPECT(callrec_dtmf_finish(d, ev, 8, &got), CALLREC_RESULT_OK);
    CHECK(strcmp(pressed, "5#") == 0 && strcmp(released, "5#") == 0);
    /* "5" sounds over samples 800..1600, "#" over 2400..3200: within one 5 ms block. */
    CHECK(starts[0] + 40 >= 800 && starts[0] <= 840 && ends[0] + 40 >= 1600 && ends[0] <= 1640);
    CHECK(starts[1] + 40 >= 2400 && starts[1] <= 2440 && ends[1] + 40 >= 3200 && ends[1] <= 3240);
    static uint8_t too_long[8001];
    EXPECT(callrec_dtmf_process(d, too_long, sizeof too_long, ev, 8, &got), CALLREC_RESULT_INPUT_TOO_LONG);
    EXPECT(callrec_dtmf_process(d, NULL, 10, ev, 8, &got), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_dtmf_process(d, audio, 10, NULL, 8, &got), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_dtmf_process(d, audio, 10, NULL, 0, &got), CALLREC_RESULT_OK);
    EXPECT(callrec_dtmf_process(NULL, audio, 10, ev, 8, &got), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_dtmf_free(d), CALLREC_RESULT_OK);
    EXPECT(callrec_dtmf_free(d), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_dtmf_process(d, audio, 10, ev, 8, &got), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_dtmf_free(NULL), CALLREC_RESULT_OK);
}

struct abort_job {
    callrec_abort_handle *handle;
    bool stopped;
};

static void *abort_later(void *arg) {
    struct abort_job *job = arg;
    sleep_ms(30);
    EXPECT(callrec_abort_handle_abort(job->handle, &job->stopped), CALLREC_RESULT_OK);
    return NULL;
}

/* Reads a whole file into a malloc'd buffer; *len gets its size. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(size > 0 ? (size_t)size : 1);
    *len = fread(data, 1, (size_t)size, f);
    fclose(f);
    return data;
}

/* A stale recorder handle, after its slot was reused by a new recorder, is rejected, and the new
 * recording's file holds only its own audio. */
static void stale_handles(const char *root) {
    callrec_engine *e = new_engine(root);
    callrec_status st;
    uint8_t a_audio[160], b_audio[160];
    memset(a_audio, 0x2A, sizeof a_audio); /* caller A: one constant A-law byte */
    for (int i = 0; i < 160; i++) b_audio[i] = (i / 4) % 2 ? 0x3B : 0xBB; /* caller B: loud square */
    callrec_recorder *a = new_recorder(e, "{\"format\":\"alaw\"}", CALLREC_CODEC_ALAW);
    EXPECT(callrec_recorder_push(a, a_audio, 160, &st), CALLREC_RESULT_OK);
    EXPECT(callrec_recorder_hangup(a, &st), CALLREC_RESULT_OK);
    callrec_recorder *stale = a;
    EXPECT(callrec_recorder_free(a), CALLREC_RESULT_OK);
    /* A fixed threshold: B's steady square is sound from its first frame. */
    callrec_recorder *b = new_recorder(e, "{\"format\":\"alaw\",\"silence_threshold_db\":-40}", CALLREC_CODEC_ALAW);
    /* Same slot, new generation: the handles differ only in the generation bits. */
    CHECK(((uintptr_t)b & 0xffffffffu) == ((uintptr_t)stale & 0xffffffffu) && b != stale);
    for (int i = 0; i < 50; i++) {
        EXPECT(callrec_recorder_push(stale, a_audio, 160, &st), CALLREC_RESULT_INVALID_HANDLE);
        EXPECT(callrec_recorder_push(b, b_audio, 160, &st), CALLREC_RESULT_OK);
    }
    EXPECT(callrec_recorder_hangup(stale, &st), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_recorder_free(stale), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_recorder_status(b, &st), CALLREC_RESULT_OK); /* B unharmed by the stale free */
    CHECK(st.phase == CALLREC_PHASE_RECORDING);
    char b_name[256];
    size_t b_name_len = 0;
    EXPECT(callrec_recorder_filename(b, b_name, sizeof b_name, &b_name_len), CALLREC_RESULT_OK);
    EXPECT(callrec_recorder_hangup(b, &st), CALLREC_RESULT_OK);
    char path[1024], json[1024];
    callrec_event *ev = NULL;
    callrec_event_info info;
    int checked = 0;
    for (int k = 0; k < 4; k++) { /* A's and B's finished and available events */
        if (callrec_engine_next_event(e, 10000, &ev) != CALLREC_RESULT_OK) break;
        size_t len = 0;
        EXPECT(callrec_event_get_info(ev, &info), CALLREC_RESULT_OK);
        EXPECT(callrec_event_json(ev, json, sizeof json, &len), CALLREC_RESULT_OK);
        char name[256];
        EXPECT(callrec_event_filename(ev, name, sizeof name, &len), CALLREC_RESULT_OK);
        if (info.kind == CALLREC_EVENT_AVAILABLE && strcmp(name, b_name) == 0) {
            snprintf(path, sizeof path, "%s%s", root, name);
            size_t flen = 0;
            uint8_t *data = read_file(path, &flen);
            CHECK(info.samples >= 40 * 160 && info.samples <= 50 * 160);
            CHECK(data != NULL && flen == 58 + info.samples);
            if (data) {
                size_t foreign = 0;
                for (size_t i = 58; i < flen; i++) foreign += data[i] != 0x3B && data[i] != 0xBB;
                CHECK(foreign == 0); /* nothing of caller A in B's file */
                checked++;
            }
            free(data);
        }
        EXPECT(callrec_event_free(ev), CALLREC_RESULT_OK);
    }
    CHECK(checked == 1);
    EXPECT(callrec_recorder_free(b), CALLREC_RESULT_OK);
    EXPECT(callrec_engine_free(e), CALLREC_RESULT_OK);
}

/* A recording process killed mid-recording (SIGKILL, a real crash) leaves an aescbc .part: the
 * next engine on the store keeps and lists it (kept_orphan, metrics), and callrec_recover_aescbc
 * finishes it with the key into the CBC file that openssl decrypts to a run of what was pushed.
 * Runs first, while this process has no threads (fork). */
static void crashed_aescbc(const char *root) {
    static const char key[] = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    static const char iv[] = "000102030405060708090a0b0c0d0e0f";
    static uint8_t pushed[60 * 160];
    char store[512], opts[512], part[1100];
    snprintf(store, sizeof store, "%s/crash", root);
    CHECK(mkdir(store, 0700) == 0);
    snprintf(opts, sizeof opts,
             "{\"milliseconds_max_silence\":600000,\"encryption_cipher\":{\"type\":\"aescbc\","
             "\"key\":\"%s\",\"initialisation_vector\":\"%s\"}}", key, iv);
    for (int i = 0; i < 60; i++) memcpy(pushed + i * 160, i < 10 ? quiet : LOUD(i), 160);
    int ready[2];
    CHECK(pipe(ready) == 0);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        callrec_engine *e = NULL;
        callrec_recorder *r = NULL;
        callrec_status st;
        size_t fed = 0, len = 0;
        char name[256];
        if (callrec_engine_new(store, strlen(store), NULL, 0, NULL, 0, NULL, &e) != CALLREC_RESULT_OK) _exit(3);
        if (callrec_recorder_new(e, opts, strlen(opts), CALLREC_CODEC_ALAW, NULL, 0, NULL, &r) != CALLREC_RESULT_OK) _exit(4);
        if (callrec_recorder_feed(r, pushed, sizeof pushed, 60000, &fed, &st) != CALLREC_RESULT_OK) _exit(5);
        if (callrec_recorder_filename(r, name, sizeof name, &len) != CALLREC_RESULT_OK) _exit(6);
        snprintf(part, sizeof part, "%s%s.aescbc.part", store, name);
        /* Until the writer has written a batch (a bounded wait, not a timing check); then the
         * parent kills this process (from outside, so not even valgrind sees it coming). */
        struct stat sb;
        for (int i = 0; i < 60000 && !(stat(part, &sb) == 0 && sb.st_size >= 58 + 4096); i++) sleep_ms(1);
        if (write(ready[1], "k", 1) != 1) _exit(7);
        for (;;) pause();
    }
    char byte = 0;
    CHECK(read(ready[0], &byte, 1) == 1 && byte == 'k');
    CHECK(kill(child, SIGKILL) == 0);
    close(ready[0]);
    close(ready[1]);
    int status = 0;
    CHECK(child > 0 && waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    callrec_engine *e = new_engine(store);
    size_t count = 0, len = 0;
    callrec_result res = CALLREC_RESULT_OK;
    for (int i = 0; i < 60000 && res == CALLREC_RESULT_OK && count == 0; i++) {
        res = callrec_engine_kept_orphan_count(e, &count);
        if (count == 0) sleep_ms(1); /* the engine's recovery thread is walking the store */
    }
    CHECK(res == CALLREC_RESULT_OK && count == 1);
    EXPECT(callrec_engine_kept_orphan_count(e, NULL), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_engine_kept_orphan(e, 1, part, sizeof part, &len), CALLREC_RESULT_INVALID_ARGUMENT);
    EXPECT(callrec_engine_kept_orphan(e, 0, part, 4, &len), CALLREC_RESULT_BUFFER_TOO_SMALL);
    EXPECT(callrec_engine_kept_orphan(e, 0, part, sizeof part, &len), CALLREC_RESULT_OK);
    CHECK(len == strlen(part) && len > 12 && strcmp(part + len - 12, ".aescbc.part") == 0);
    callrec_metrics m;
    EXPECT(callrec_engine_metrics(e, &m), CALLREC_RESULT_OK);
    CHECK(m.orphans_kept == 1 && m.recordings_recovered == 0);

    uint64_t samples = 0;
    char wrong[sizeof key];
    memcpy(wrong, key, sizeof key);
    wrong[0] = '7';
    EXPECT(callrec_recover_aescbc(part, len, wrong, 64, iv, 32, &samples), CALLREC_RESULT_REFUSED);
    EXPECT(callrec_recover_aescbc(part, len, "xyz", 3, iv, 32, &samples), CALLREC_RESULT_INVALID_ARGUMENT);
    EXPECT(callrec_recover_aescbc(part, len, key, 64, iv, 32, NULL), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_recover_aescbc(store, strlen(store), key, 64, iv, 32, &samples), CALLREC_RESULT_REFUSED);
    CHECK(samples == 0); /* outputs are written only on success */
    EXPECT(callrec_recover_aescbc(part, len, key, 64, iv, 32, &samples), CALLREC_RESULT_OK);
    CHECK(samples >= 4096 && samples <= sizeof pushed);
    CHECK(access(part, F_OK) != 0);
    char final_path[1024], decrypted[600], cmd[2400];
    snprintf(final_path, sizeof final_path, "%.*s", (int)(len - 12), part);
    snprintf(decrypted, sizeof decrypted, "%s/decrypted.wav", store);
    snprintf(cmd, sizeof cmd, "openssl enc -d -aes-256-cbc -K %s -iv %s -in '%s' -out '%s'", key, iv,
             final_path, decrypted);
    CHECK(system(cmd) == 0);
    size_t flen = 0;
    uint8_t *plain = read_file(decrypted, &flen);
    CHECK(plain != NULL && flen == 58 + samples && memcmp(plain, "RIFF", 4) == 0);
    int found = 0;
    for (size_t at = 0; plain && flen == 58 + samples && at + samples <= sizeof pushed && !found; at++)
        found = memcmp(pushed + at, plain + 58, samples) == 0;
    CHECK(found); /* the recovered audio is a run of what was pushed */
    free(plain);
    EXPECT(callrec_engine_free(e), CALLREC_RESULT_OK);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s STORE_DIR\n", argv[0]);
        return 2;
    }
    const char *root = argv[1];
    for (int f = 0; f < 12; f++) {
        double level = 0.6 + 0.4 * sin(2 * 3.14159265358979 * f / 12.0);
        for (int i = 0; i < 160; i++) loud_cycle[f][i] = alaw((int)((i / 4) % 2 ? 20000 * level : -20000 * level));
    }
    for (int i = 0; i < 160; i++) quiet[i] = 0xD5;
    crashed_aescbc(root);
    callrec_status st;
    char json[1024], msg[256];
    size_t n = 0;

    /* Version and result names. */
    CHECK(strcmp(callrec_version(), "0.1.0") == 0);
    for (uint32_t r = 0; r <= CALLREC_RESULT_REFUSED; r++)
        CHECK(strcmp(callrec_result_name(r), "unknown result") != 0);
    CHECK(strcmp(callrec_result_name(CALLREC_RESULT_REFUSED + 1), "unknown result") == 0);
    CHECK(strcmp(callrec_result_name(999), "unknown result") == 0);

    /* Engine errors. */
    callrec_engine *e = NULL;
    EXPECT(callrec_engine_new(NULL, 3, NULL, 0, NULL, 0, NULL, &e), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_engine_new(root, strlen(root), NULL, 0, NULL, 0, NULL, NULL), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_engine_new("\xff\xfe", 2, NULL, 0, NULL, 0, NULL, &e), CALLREC_RESULT_INVALID_UTF8);
    const char *small_ring = "{\"ring_milliseconds\":50}";
    EXPECT(callrec_engine_new(root, strlen(root), small_ring, strlen(small_ring), msg, sizeof msg, &n, &e),
           CALLREC_RESULT_INVALID_CONFIG);
    CHECK(strstr(msg, "ring_milliseconds") != NULL && n == strlen(msg));
    /* The message is cut to fit (NUL-terminated) and its full length still reported. */
    EXPECT(callrec_engine_new(root, strlen(root), small_ring, strlen(small_ring), msg, 8, &n, &e),
           CALLREC_RESULT_INVALID_CONFIG);
    CHECK(strlen(msg) == 7 && n > 7);
    const char *dup = "{\"writers\":1,\"writers\":2}";
    EXPECT(callrec_engine_new(root, strlen(root), dup, strlen(dup), msg, sizeof msg, NULL, &e),
           CALLREC_RESULT_INVALID_CONFIG);
    CHECK(strstr(msg, "writers") != NULL && strstr(msg, "twice") != NULL);
    EXPECT(callrec_engine_new("/proc/callrec", 13, NULL, 0, msg, sizeof msg, &n, &e), CALLREC_RESULT_IO);
    CHECK(strstr(msg, "/proc/callrec") != NULL);
    CHECK(e == NULL); /* outputs are written only on success */
    /* Rings of 100..1023 ms work with the default batch size (it is capped at half the ring). */
    const char *ring_100 = "{\"ring_milliseconds\":100,\"writers\":2}";
    EXPECT(callrec_engine_new(root, strlen(root), ring_100, strlen(ring_100), NULL, 0, NULL, &e), CALLREC_RESULT_OK);
    EXPECT(callrec_engine_free(e), CALLREC_RESULT_OK);
    e = NULL;
    e = new_engine(root);
    CHECK(e != NULL);

    /* Options errors name the field. */
    const char *bad = "{\"seconds_max_duration\":-1}";
    EXPECT(callrec_options_error(bad, strlen(bad), msg, sizeof msg, &n), CALLREC_RESULT_OK);
    CHECK(strstr(msg, "seconds_max_duration") != NULL && n == strlen(msg));
    size_t needed = n;
    EXPECT(callrec_options_error(bad, strlen(bad), msg, 5, &n), CALLREC_RESULT_BUFFER_TOO_SMALL);
    CHECK(n == needed); /* the caller learns the size it needs */
    EXPECT(callrec_options_error("{}", 2, msg, sizeof msg, &n), CALLREC_RESULT_OK);
    CHECK(n == 0 && msg[0] == 0);
    EXPECT(callrec_options_error(NULL, 2, msg, sizeof msg, &n), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_options_error("{}", 2, msg, sizeof msg, NULL), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_options_error("\xff", 1, msg, sizeof msg, &n), CALLREC_RESULT_INVALID_UTF8);

    /* Recorder errors. */
    callrec_recorder *r = NULL;
    /* recorder_new gives the options error itself, naming the field. */
    EXPECT(callrec_recorder_new(e, bad, strlen(bad), CALLREC_CODEC_ALAW, msg, sizeof msg, &n, &r),
           CALLREC_RESULT_INVALID_OPTIONS);
    CHECK(strncmp(msg, "seconds_max_duration: ", 22) == 0 && n == strlen(msg));
    EXPECT(callrec_recorder_new(e, "{", 1, CALLREC_CODEC_ALAW, NULL, 0, NULL, &r), CALLREC_RESULT_INVALID_OPTIONS);
    EXPECT(callrec_recorder_new(e, "{}", 2, 7, NULL, 0, NULL, &r), CALLREC_RESULT_INVALID_CODEC);
    EXPECT(callrec_recorder_new(NULL, "{}", 2, CALLREC_CODEC_ALAW, NULL, 0, NULL, &r), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_recorder_new(e, "{}", 2, CALLREC_CODEC_ALAW, NULL, 0, NULL, NULL), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_recorder_new(e, "\xff", 1, CALLREC_CODEC_ALAW, NULL, 0, NULL, &r), CALLREC_RESULT_INVALID_UTF8);
    CHECK(r == NULL);

    /* 0. Feed: ten seconds in one call, five times the 2 s ring. With no patience it times out
     *    and says how much it took; the rest then follows, and the file holds every byte. */
    {
        static uint8_t ten_s[80000];
        for (size_t i = 0; i < sizeof ten_s; i++) ten_s[i] = LOUD(i / 160)[i % 160];
        /* A fixed threshold: sound from the first frame, so the file is every byte fed. */
        r = new_recorder(e, "{\"seconds_max_duration\":60,\"barge_in_digits\":\"\",\"silence_threshold_db\":-40}",
                         CALLREC_CODEC_ALAW);
        size_t fed = 0;
        EXPECT(callrec_recorder_feed(r, NULL, 160, 0, &fed, &st), CALLREC_RESULT_NULL_PARAMETER);
        EXPECT(callrec_recorder_feed(r, ten_s, 160, 0, &fed, NULL), CALLREC_RESULT_NULL_PARAMETER);
        EXPECT(callrec_recorder_feed(r, ten_s, sizeof ten_s, 0, &fed, &st), CALLREC_RESULT_TIMEOUT);
        CHECK(fed > 0 && fed < sizeof ten_s);
        size_t rest = 0;
        EXPECT(callrec_recorder_feed(r, ten_s + fed, sizeof ten_s - fed, UINT64_MAX, &rest, &st), CALLREC_RESULT_OK);
        CHECK(rest == sizeof ten_s - fed && st.phase == CALLREC_PHASE_RECORDING);
        EXPECT(callrec_recorder_hangup(r, &st), CALLREC_RESULT_OK);
        callrec_event_info info = take_event(e, CALLREC_EVENT_FINISHED, json, sizeof json);
        CHECK(info.reason == CALLREC_REASON_HANGUP && info.samples == sizeof ten_s && info.frames_dropped == 0);
        take_event(e, CALLREC_EVENT_AVAILABLE, json, sizeof json);
        callrec_recorder_free(r);
    }

    /* 1. A recording that stops on silence: 0.4 s quiet, 1 s loud, then quiet. Defaults but
     *    a 1 s silence timer. NULL options with length 0 would mean defaults. */
    r = new_recorder(e, "{\"milliseconds_max_silence\":1000,\"barge_in_digits\":\"#\"}", CALLREC_CODEC_ALAW);
    EXPECT(callrec_recorder_status(r, &st), CALLREC_RESULT_OK);
    CHECK(st.phase == CALLREC_PHASE_WAITING && st.reason == CALLREC_REASON_NONE);
    EXPECT(callrec_recorder_push(r, quiet, 160, NULL), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_recorder_push(r, NULL, 160, &st), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_recorder_push(r, NULL, 0, &st), CALLREC_RESULT_OK); /* empty: a no-op */
    static uint8_t too_long[8001];
    EXPECT(callrec_recorder_push(r, too_long, sizeof too_long, &st), CALLREC_RESULT_INPUT_TOO_LONG);
    EXPECT(callrec_recorder_digit(r, 'x', &st), CALLREC_RESULT_INVALID_DIGIT);
    EXPECT(callrec_recorder_digit(r, '1', NULL), CALLREC_RESULT_NULL_PARAMETER);
    size_t free_bytes = 0;
    EXPECT(callrec_recorder_ring_free(r, &free_bytes), CALLREC_RESULT_OK);
    CHECK(free_bytes == 16000);
    EXPECT(callrec_recorder_ring_free(r, NULL), CALLREC_RESULT_NULL_PARAMETER);
    uint8_t beep[160];
    EXPECT(callrec_recorder_playout(r, beep, sizeof beep, &n), CALLREC_RESULT_OK);
    CHECK(n == 0); /* no beep_on_start */
    EXPECT(callrec_recorder_playout(r, NULL, 160, &n), CALLREC_RESULT_NULL_PARAMETER);
    n = 99;
    EXPECT(callrec_recorder_playout(r, NULL, 0, &n), CALLREC_RESULT_OK); /* as push(NULL, 0) */
    CHECK(n == 0);
    char name[256];
    EXPECT(callrec_recorder_filename(r, name, sizeof name, &n), CALLREC_RESULT_OK);
    CHECK(n == strlen(name) && strlen(name) > 40);
    size_t name_len = n;
    EXPECT(callrec_recorder_filename(r, name, 10, &n), CALLREC_RESULT_BUFFER_TOO_SMALL);
    CHECK(n == name_len);
    int frame = 0;
    for (; frame < 20; frame++) EXPECT(push(r, quiet, 160, &st), CALLREC_RESULT_OK);
    CHECK(st.phase == CALLREC_PHASE_WAITING);
    for (; frame < 70; frame++) EXPECT(push(r, LOUD(frame), 160, &st), CALLREC_RESULT_OK);
    CHECK(st.phase == CALLREC_PHASE_RECORDING);
    EXPECT(callrec_recorder_digit(r, '1', &st), CALLREC_RESULT_OK); /* not a barge-in digit */
    CHECK(st.phase == CALLREC_PHASE_RECORDING);
    int stop_frame = -1;
    for (; frame < 200 && stop_frame < 0; frame++) {
        EXPECT(push(r, quiet, 160, &st), CALLREC_RESULT_OK);
        if (st.phase == CALLREC_PHASE_STOPPED) stop_frame = frame;
    }
    /* Last sound frame 69, then 50 silent frames: frame 119. */
    CHECK(stop_frame == 119 && st.reason == CALLREC_REASON_SILENCE);
    /* Pushing after the stop returns the stopped status and records nothing. */
    EXPECT(callrec_recorder_push(r, LOUD(0), 160, &st), CALLREC_RESULT_OK);
    CHECK(st.phase == CALLREC_PHASE_STOPPED && st.reason == CALLREC_REASON_SILENCE);
    EXPECT(callrec_recorder_hangup(r, &st), CALLREC_RESULT_OK);
    CHECK(st.reason == CALLREC_REASON_SILENCE);
    callrec_event_info info = take_event(e, CALLREC_EVENT_FINISHED, json, sizeof json);
    CHECK(info.reason == CALLREC_REASON_SILENCE && info.contains_sound && !info.file_available);
    /* Pre-roll 10 frames (from frame 10) to frame 119: 110 frames = 2.2 s. */
    CHECK(info.samples == 110 * 160 && info.seconds_duration == 2.2);
    CHECK(info.barge_in_digit == 0 && info.frames_dropped == 0);
    CHECK(strstr(json, "\"seconds_duration\":2.2,\"reason\":\"silence\"}}") != NULL);
    info = take_event(e, CALLREC_EVENT_AVAILABLE, json, sizeof json);
    CHECK(info.file_available && info.samples == 110 * 160);
    /* Double free and use after free are caught. */
    EXPECT(callrec_recorder_free(r), CALLREC_RESULT_OK);
    EXPECT(callrec_recorder_free(r), CALLREC_RESULT_INVALID_HANDLE); /* double free: no effect */
    EXPECT(callrec_recorder_push(r, LOUD(0), 160, &st), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_recorder_status(r, &st), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_recorder_digit(r, '#', &st), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_recorder_hangup(r, &st), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_recorder_playout(r, beep, 160, &n), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_recorder_filename(r, name, sizeof name, &n), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_recorder_ring_free(r, &free_bytes), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_recorder_feed(r, LOUD(0), 160, 0, NULL, &st), CALLREC_RESULT_INVALID_HANDLE);
    callrec_abort_handle *h = NULL;
    EXPECT(callrec_recorder_abort_handle(r, &h), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_recorder_status(NULL, &st), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_recorder_free(NULL), CALLREC_RESULT_OK);
    /* A handle of another type is not a recorder. */
    EXPECT(callrec_recorder_status((callrec_recorder *)e, &st), CALLREC_RESULT_INVALID_HANDLE);

    /* No event pending: non-blocking and short-timeout polls return NO_EVENT. */
    callrec_event *ev = NULL;
    EXPECT(callrec_engine_next_event(e, 0, &ev), CALLREC_RESULT_NO_EVENT);
    EXPECT(callrec_engine_next_event(e, 20, &ev), CALLREC_RESULT_NO_EVENT);
    EXPECT(callrec_engine_next_event(NULL, 0, &ev), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_engine_next_event(e, 0, NULL), CALLREC_RESULT_NULL_PARAMETER);
    CHECK(ev == NULL);

    /* 2. Barge-in with the beep: pull the beep, then a digit stops it. */
    r = new_recorder(e, "{\"beep_on_start\":true,\"barge_in_digits\":\"*9\",\"format\":\"ulaw\"}", CALLREC_CODEC_ALAW);
    size_t beep_total = 0;
    do {
        EXPECT(callrec_recorder_playout(r, beep, sizeof beep, &n), CALLREC_RESULT_OK);
        beep_total += n;
        EXPECT(callrec_recorder_push(r, quiet, 160, &st), CALLREC_RESULT_OK);
    } while (n > 0);
    CHECK(beep_total == 2000); /* 250 ms */
    for (int i = 0; i < 10; i++) EXPECT(callrec_recorder_push(r, LOUD(i), 160, &st), CALLREC_RESULT_OK);
    CHECK(st.phase == CALLREC_PHASE_RECORDING);
    EXPECT(callrec_recorder_digit(r, '9', &st), CALLREC_RESULT_OK);
    CHECK(st.phase == CALLREC_PHASE_STOPPED && st.reason == CALLREC_REASON_BARGEIN);
    info = take_event(e, CALLREC_EVENT_FINISHED, json, sizeof json);
    CHECK(info.reason == CALLREC_REASON_BARGEIN && info.barge_in_digit == '9');
    CHECK(strstr(json, "\"barge_in_digit\":\"9\"") != NULL);
    take_event(e, CALLREC_EVENT_AVAILABLE, json, sizeof json);
    callrec_recorder_free(r);

    /* 3. Abort from a second thread while this one pushes. */
    r = new_recorder(e, "{}", CALLREC_CODEC_ULAW);
    EXPECT(callrec_recorder_abort_handle(r, NULL), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_recorder_abort_handle(r, &h), CALLREC_RESULT_OK);
    struct abort_job job = {h, false};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, abort_later, &job) == 0);
    int pushed = 0;
    do {
        EXPECT(callrec_recorder_push(r, pushed % 2 ? LOUD(pushed) : quiet, 160, &st), CALLREC_RESULT_OK);
        pushed++;
        sleep_ms(1);
    } while (st.phase != CALLREC_PHASE_STOPPED && pushed < 5000);
    pthread_join(t, NULL);
    CHECK(job.stopped && st.reason == CALLREC_REASON_ABORTED && pushed < 5000);
    bool again = true;
    EXPECT(callrec_abort_handle_abort(h, &again), CALLREC_RESULT_OK);
    CHECK(!again);
    EXPECT(callrec_abort_handle_abort(NULL, &again), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_abort_handle_abort(h, NULL), CALLREC_RESULT_NULL_PARAMETER);
    info = take_event(e, CALLREC_EVENT_FINISHED, json, sizeof json);
    CHECK(info.reason == CALLREC_REASON_ABORTED);
    take_event(e, CALLREC_EVENT_AVAILABLE, json, sizeof json);
    EXPECT(callrec_recorder_free(r), CALLREC_RESULT_OK);
    EXPECT(callrec_abort_handle_abort(h, &again), CALLREC_RESULT_OK); /* may outlive its recorder */
    EXPECT(callrec_abort_handle_free(h), CALLREC_RESULT_OK);
    EXPECT(callrec_abort_handle_free(h), CALLREC_RESULT_INVALID_HANDLE); /* double free */
    EXPECT(callrec_abort_handle_abort(h, &again), CALLREC_RESULT_INVALID_HANDLE); /* use after free */
    EXPECT(callrec_abort_handle_free(NULL), CALLREC_RESULT_OK);

    /* 4. Hangup with a partial frame; metrics. */
    r = new_recorder(e, "", CALLREC_CODEC_ALAW); /* empty options: all defaults */
    /* 10 quiet frames (the detector's first look at the line; the pre-roll records them). */
    for (int i = 0; i < 10; i++) EXPECT(callrec_recorder_push(r, quiet, 160, &st), CALLREC_RESULT_OK);
    for (int i = 0; i < 30; i++) EXPECT(callrec_recorder_push(r, LOUD(i), 160, &st), CALLREC_RESULT_OK);
    EXPECT(callrec_recorder_push(r, LOUD(30), 80, &st), CALLREC_RESULT_OK);
    EXPECT(callrec_recorder_hangup(r, &st), CALLREC_RESULT_OK);
    CHECK(st.reason == CALLREC_REASON_HANGUP);
    info = take_event(e, CALLREC_EVENT_FINISHED, json, sizeof json);
    CHECK(info.reason == CALLREC_REASON_HANGUP && info.samples == 40 * 160 + 80);
    take_event(e, CALLREC_EVENT_AVAILABLE, json, sizeof json);
    callrec_metrics m;
    EXPECT(callrec_engine_metrics(e, &m), CALLREC_RESULT_OK);
    CHECK(m.recordings_started == 5 && m.recordings_finished == 5 && m.frames_dropped == 0);
    /* Not publishing: the publisher's counters stay 0 (ffi/tests/c/test_publish.c checks them
     * against a real S3 server in scripts/test-publish). */
    CHECK(m.publish_uploaded == 0 && m.publish_failed_attempts == 0 && m.publish_gave_up == 0 &&
          m.publish_pending == 0);
    EXPECT(callrec_engine_metrics(e, NULL), CALLREC_RESULT_NULL_PARAMETER);
    callrec_recorder_free(r);

    /* 4b. Pause and resume: the file is the expected splice. */
    pause_and_resume(e, root);
    two_legs(e, root);
    dtmf_detector();

    /* 5. Shutdown finalizes an open recording with "other"; recording afterwards is refused. */
    r = new_recorder(e, "{}", CALLREC_CODEC_ALAW);
    for (int i = 0; i < 10; i++) EXPECT(callrec_recorder_push(r, quiet, 160, &st), CALLREC_RESULT_OK);
    for (int i = 0; i < 10; i++) EXPECT(callrec_recorder_push(r, LOUD(i), 160, &st), CALLREC_RESULT_OK);
    EXPECT(callrec_engine_shutdown(e), CALLREC_RESULT_OK);
    EXPECT(callrec_engine_shutdown(e), CALLREC_RESULT_OK); /* idempotent */
    EXPECT(callrec_engine_shutdown(NULL), CALLREC_RESULT_NULL_PARAMETER);
    EXPECT(callrec_recorder_push(r, LOUD(10), 160, &st), CALLREC_RESULT_OK);
    CHECK(st.phase == CALLREC_PHASE_STOPPED && st.reason == CALLREC_REASON_OTHER);
    info = take_event(e, CALLREC_EVENT_FINISHED, json, sizeof json);
    CHECK(info.reason == CALLREC_REASON_OTHER && info.samples == 20 * 160);
    take_event(e, CALLREC_EVENT_AVAILABLE, json, sizeof json);
    EXPECT(callrec_engine_next_event(e, -1, &ev), CALLREC_RESULT_NO_EVENT); /* drained */
    callrec_recorder *late = NULL;
    EXPECT(callrec_recorder_new(e, "{}", 2, CALLREC_CODEC_ALAW, msg, sizeof msg, &n, &late), CALLREC_RESULT_SHUT_DOWN);
    CHECK(strstr(msg, "shut down") != NULL);
    /* Free the engine before the recorder: allowed, in any order. */
    EXPECT(callrec_engine_free(e), CALLREC_RESULT_OK);
    EXPECT(callrec_engine_free(e), CALLREC_RESULT_INVALID_HANDLE); /* double free */
    EXPECT(callrec_engine_metrics(e, &m), CALLREC_RESULT_INVALID_HANDLE); /* use after free */
    EXPECT(callrec_engine_next_event(e, 0, &ev), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_recorder_new(e, "{}", 2, CALLREC_CODEC_ALAW, NULL, 0, NULL, &late), CALLREC_RESULT_INVALID_HANDLE);
    EXPECT(callrec_recorder_free(r), CALLREC_RESULT_OK);
    EXPECT(callrec_engine_free(NULL), CALLREC_RESULT_OK);
    EXPECT(callrec_event_free(NULL), CALLREC_RESULT_OK);

    stale_handles(root);

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
