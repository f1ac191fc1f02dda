// Records a call from a G.711 WAV (or raw G.711) through the C API with RAII wrappers, and
// prints the finished and available action results (like `callrec record`).
//
//   record_file_cpp INPUT [--store DIR] [--options JSON] [--codec alaw|ulaw]
//
// Build (one line):
//   g++ -std=c++17 -I include examples/cpp/record_file.cpp target/release/libcallrec_ffi.a
//       -lpthread -ldl -lm -o record_file_cpp
#include "callrec.h"

#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace callrec {

// Throws on any result but OK, with the library's name for it.
inline void check(callrec_result r, const char *what) {
    if (r != CALLREC_RESULT_OK) throw std::runtime_error(std::string(what) + ": " + callrec_result_name(r));
}

template <typename T, callrec_result (*Free)(T *)>
struct Deleter {
    void operator()(T *p) const noexcept { (void)Free(p); }
};
using EnginePtr = std::unique_ptr<callrec_engine, Deleter<callrec_engine, callrec_engine_free>>;
using RecorderPtr = std::unique_ptr<callrec_recorder, Deleter<callrec_recorder, callrec_recorder_free>>;
using EventPtr = std::unique_ptr<callrec_event, Deleter<callrec_event, callrec_event_free>>;

class Engine {
  public:
    explicit Engine(const std::string &store) {
        callrec_engine *e = nullptr;
        char why[512];
        callrec_result res = callrec_engine_new(store.data(), store.size(), nullptr, 0, why, sizeof why, nullptr, &e);
        if (res != CALLREC_RESULT_OK) throw std::runtime_error(std::string("engine: ") + why);
        engine_.reset(e);
    }
    RecorderPtr record(const std::string &options, uint32_t codec) {
        callrec_recorder *r = nullptr;
        char why[512];
        callrec_result res =
            callrec_recorder_new(engine_.get(), options.data(), options.size(), codec, why, sizeof why, nullptr, &r);
        if (res == CALLREC_RESULT_INVALID_OPTIONS) throw std::invalid_argument(why);
        check(res, "record");
        return RecorderPtr(r);
    }
    // The next event, or nullptr on timeout.
    EventPtr next_event(int64_t timeout_ms) {
        callrec_event *ev = nullptr;
        callrec_result r = callrec_engine_next_event(engine_.get(), timeout_ms, &ev);
        if (r == CALLREC_RESULT_NO_EVENT) return nullptr;
        check(r, "event");
        return EventPtr(ev);
    }

  private:
    EnginePtr engine_;
};

inline std::string json(const callrec_event *ev) {
    size_t need = 0, n = 0;
    check(callrec_event_json_len(ev, &need), "json length");
    std::string s(need + 1, '\0');
    check(callrec_event_json(ev, s.data(), s.size(), &n), "json");
    s.resize(n);
    return s;
}

}  // namespace callrec

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24; }

int main(int argc, char **argv) try {
    std::string input, store = "recordings", options = "{}";
    uint32_t codec = CALLREC_CODEC_ALAW;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--store" && i + 1 < argc) store = argv[++i];
        else if (a == "--options" && i + 1 < argc) options = argv[++i];
        else if (a == "--codec" && i + 1 < argc) codec = std::string(argv[++i]) == "ulaw" ? CALLREC_CODEC_ULAW : CALLREC_CODEC_ALAW;
        else input = a;
    }
    if (input.empty()) {
        std::cerr << "usage: record_file_cpp INPUT [--store DIR] [--options JSON] [--codec alaw|ulaw]\n";
        return 2;
    }
    std::ifstream in(input, std::ios::binary);
    if (!in) {
        std::cerr << input << ": cannot open\n";
        return 2;
    }
    std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const uint8_t *audio = file.data();
    size_t len = file.size();
    // A G.711 WAV: walk the RIFF chunks to the data; anything else is raw G.711 in --codec.
    if (len >= 12 && !std::memcmp(audio, "RIFF", 4) && !std::memcmp(audio + 8, "WAVE", 4)) {
        for (size_t at = 12, tag = 0; at + 8 <= file.size();) {
            uint32_t chunk = le32(&file[at + 4]);
            if (!std::memcmp(&file[at], "fmt ", 4)) tag = file[at + 8] | file[at + 9] << 8;
            if (!std::memcmp(&file[at], "data", 4) && (tag == 6 || tag == 7)) {
                codec = tag == 6 ? CALLREC_CODEC_ALAW : CALLREC_CODEC_ULAW;
                audio = &file[at + 8];
                len = std::min<size_t>(chunk, file.size() - at - 8);
                break;
            }
            at += 8 + size_t(chunk) + (chunk & 1);
        }
    }

    callrec::Engine engine(store);
    {
        callrec::RecorderPtr rec = engine.record(options, codec);
        callrec_status st{CALLREC_PHASE_WAITING, CALLREC_REASON_NONE};
        uint8_t beep[160];
        for (size_t at = 0; at < len && st.phase != CALLREC_PHASE_STOPPED; at += 160) {
            size_t n = std::min<size_t>(160, len - at), played = 0;
            callrec::check(callrec_recorder_playout(rec.get(), beep, sizeof beep, &played), "playout");
            // Faster than real time: feed waits for the writer (up to 60 s) instead of dropping.
            callrec::check(callrec_recorder_feed(rec.get(), audio + at, n, 60000, nullptr, &st), "feed");
        }
        if (st.phase != CALLREC_PHASE_STOPPED) callrec::check(callrec_recorder_hangup(rec.get(), &st), "hangup");
    }  // the recorder is freed here
    for (;;) {
        callrec::EventPtr ev = engine.next_event(60000);
        if (!ev) throw std::runtime_error("no event within 60 s");
        callrec_event_info info{};
        callrec::check(callrec_event_get_info(ev.get(), &info), "event info");
        std::cout << callrec::json(ev.get()) << '\n';
        if (info.kind == CALLREC_EVENT_AVAILABLE || info.reason == CALLREC_REASON_ERROR) break;
    }
    return 0;
} catch (const std::invalid_argument &e) {
    std::cerr << "record_file_cpp: " << e.what() << '\n';
    return 2;
} catch (const std::exception &e) {
    std::cerr << "record_file_cpp: " << e.what() << '\n';
    return 1;
}
