/* The publisher through the C API against a real S3 server (run by publish/tests/s3_e2e.py with
 * the server's AWS_* environment): the events and the `publish_*` counters of callrec_metrics
 * for a verified upload, then for a bad credential that gives up after max_age_seconds.
 * Built with gcc -std=c11 -Wall -Wextra -Werror. Prints "N passed, 0 failed".
 *
 * Usage: test_publish STORE_DIR s3://BUCKET/PREFIX */
#define _POSIX_C_SOURCE 200809L
#include "callrec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Starts an engine on `store` with `config`; NULL (and the error printed) if it cannot. */
static callrec_engine *start(const char *store, const char *config) {
    callrec_engine *e = NULL;
    char err[512] = "";
    size_t n = 0;
    EXPECT(callrec_engine_new(store, strlen(store), config, strlen(config), err, sizeof err, &n, &e),
           CALLREC_RESULT_OK);
    if (!e) fprintf(stderr, "callrec_engine_new: %s\n", err);
    return e;
}

/* One second of A-law silence, then hangup (reason hangup). */
static void record_one_second(callrec_engine *e) {
    static uint8_t silence[8000];
    memset(silence, 0xD5, sizeof silence);
    callrec_recorder *r = NULL;
    char err[256];
    size_t n = 0, fed = 0;
    callrec_status st;
    const char *options = "{\"id\":\"c-publish\"}";
    EXPECT(callrec_recorder_new(e, options, strlen(options), CALLREC_CODEC_ALAW, err, sizeof err, &n, &r),
           CALLREC_RESULT_OK);
    if (!r) return;
    EXPECT(callrec_recorder_feed(r, silence, sizeof silence, 60000, &fed, &st), CALLREC_RESULT_OK);
    CHECK(fed == sizeof silence);
    EXPECT(callrec_recorder_hangup(r, &st), CALLREC_RESULT_OK);
    EXPECT(callrec_recorder_free(r), CALLREC_RESULT_OK);
}

/* The next event (waiting up to two minutes): its info, and its JSON in `json`. */
static callrec_event_info next_event(callrec_engine *e, char *json, size_t cap) {
    callrec_event *ev = NULL;
    callrec_event_info info;
    memset(&info, 0, sizeof info);
    json[0] = 0;
    EXPECT(callrec_engine_next_event(e, 120000, &ev), CALLREC_RESULT_OK);
    if (!ev) return info;
    size_t got = 0;
    EXPECT(callrec_event_get_info(ev, &info), CALLREC_RESULT_OK);
    EXPECT(callrec_event_json(ev, json, cap, &got), CALLREC_RESULT_OK);
    EXPECT(callrec_event_free(ev), CALLREC_RESULT_OK);
    return info;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s STORE_DIR s3://BUCKET/PREFIX\n", argv[0]);
        return 2;
    }
    char store[4096], config[4096], json[4096];
    callrec_metrics m;
    callrec_event_info info;

    /* 1. A verified upload: finished, then available; counted once, nothing left pending. */
    snprintf(store, sizeof store, "%s/ok", argv[1]);
    snprintf(config, sizeof config, "{\"publish\":\"%s\"}", argv[2]);
    callrec_engine *e = start(store, config);
    if (!e) return 1;
    record_one_second(e);
    info = next_event(e, json, sizeof json);
    CHECK(info.kind == CALLREC_EVENT_FINISHED && info.reason == CALLREC_REASON_HANGUP);
    CHECK(!info.file_available);
    info = next_event(e, json, sizeof json);
    CHECK(info.kind == CALLREC_EVENT_AVAILABLE && info.file_available);
    CHECK(strstr(json, "publish_error") == NULL);
    /* The publisher counts before it reports, so the counters include this recording. */
    EXPECT(callrec_engine_metrics(e, &m), CALLREC_RESULT_OK);
    CHECK(m.publish_uploaded == 1 && m.publish_failed_attempts == 0);
    CHECK(m.publish_gave_up == 0 && m.publish_pending == 0);
    CHECK(m.recordings_finished == 1);
    printf("uploaded: %s\n", json);
    EXPECT(callrec_engine_free(e), CALLREC_RESULT_OK);

    /* 2. A bad credential: every attempt fails (403); after max_age_seconds the recording is
     * reported with reason error, the cause named and the secret never echoed. */
    const char *wrong = "not-the-secret-from-c-1234";
    setenv("AWS_SECRET_ACCESS_KEY", wrong, 1);
    snprintf(store, sizeof store, "%s/badkey", argv[1]);
    snprintf(config, sizeof config, "{\"publish\":{\"url\":\"%s\",\"max_age_seconds\":2}}", argv[2]);
    e = start(store, config);
    if (!e) return 1;
    record_one_second(e);
    info = next_event(e, json, sizeof json);
    CHECK(info.kind == CALLREC_EVENT_FINISHED && info.reason == CALLREC_REASON_HANGUP);
    info = next_event(e, json, sizeof json);
    CHECK(info.kind == CALLREC_EVENT_AVAILABLE && !info.file_available);
    CHECK(info.reason == CALLREC_REASON_ERROR);
    CHECK(strstr(json, "\"publish_error\":\"upload to s3://") != NULL);
    CHECK(strstr(json, wrong) == NULL);
    EXPECT(callrec_engine_metrics(e, &m), CALLREC_RESULT_OK);
    CHECK(m.publish_uploaded == 0 && m.publish_failed_attempts >= 1);
    CHECK(m.publish_gave_up == 1 && m.publish_pending == 0);
    printf("gave up: %s (%llu failed attempts)\n", json, (unsigned long long)m.publish_failed_attempts);
    EXPECT(callrec_engine_free(e), CALLREC_RESULT_OK);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
