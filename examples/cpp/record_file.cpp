// Records a call from a G.711 WAV (or raw G.711) through the C API with RAII wrappers, and
// prints the finished and available action results (like `callrec record`).
//
//   record_file_cpp INPUT [--other OTHER] [--store DIR] [--options JSON] [--codec alaw|ulaw]
//
// With --other, OTHER (the same law) is the other party: one two-leg recording of both.
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
#include <tuple>
#include <utility>
#include <vector>
#include <algorithm>

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
    // Both parties of a call: the caller's recorder and the other party's.
    std::pair<RecorderPtr, RecorderPtr> record_call(const std::string &options, uint32_t codec) {
        callrec_recorder *caller = nullptr, *other = nullptr;
        char why[512];
        callrec_result res = callrec_call_new(engine_.get(), options.data(), options.size(), codec, why, sizeof why,
                                              nullptr, &caller, &other);
        if (res == CALLREC_RESULT_INVALID_OPTIONS) throw std::invalid_argument(why);
        check(res, "record_call");
        return {RecorderPtr(caller), RecorderPtr(other)};
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

// One party's input: a G.711 WAV's audio (its law in `codec`), or raw G.711 in --codec.
struct Input {
    std::vector<uint8_t> file;
    size_t offset = 0, len = 0;
    const uint8_t *audio() const { return file.data() + offset; }
};

static Input load(const std::string &path, uint32_t &codec) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::invalid_argument(path + ": cannot open");
    Input input;
    input.file.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    const std::vector<uint8_t> &file = input.file;
    input.len = file.size();
    // A G.711 WAV: walk the RIFF chunks to the data; anything else is raw G.711 in --codec.
    if (file.size() >= 12 && !std::memcmp(file.data(), "RIFF", 4) && !std::memcmp(file.data() + 8, "WAVE", 4)) {
        for (size_t at = 12, tag = 0; at + 8 <= file.size();) {
            uint32_t chunk = le32(&file[at + 4]);
            if (!std::memcmp(&file[at], "fmt ", 4)) tag = file[at + 8] | file[at + 9] << 8;
            if (!std::memcmp(&file[at], "data", 4) && (tag == 6 || tag == 7)) {
                codec = tag == 6 ? CALLREC_CODEC_ALAW : CALLREC_CODEC_ULAW;
                input.offset = at + 8;
                input.len = std::min<size_t>(chunk, file.size() - at - 8);
                break;
            }
            at += 8 + size_t(chunk) + (chunk & 1);
        }
    }
    return input;
}

int main(int argc, char **argv) try {
    std::string input_path, other_path, store = "recordings", options = "{}";
    uint32_t codec = CALLREC_CODEC_ALAW;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--store" && i + 1 < argc) store = argv[++i];
        else if (a == "--options" && i + 1 < argc) options = argv[++i];
        else if (a == "--other" && i + 1 < argc) other_path = argv[++i];
        else if (a == "--codec" && i + 1 < argc) codec = std::string(argv[++i]) == "ulaw" ? CALLREC_CODEC_ULAW : CALLREC_CODEC_ALAW;
        else input_path = a;
    }
    if (input_path.empty()) {
        std::cerr << "usage: record_file_cpp INPUT [--other OTHER] [--store DIR] [--options JSON] [--codec alaw|ulaw]\n";
        return 2;
    }
    const uint32_t raw_codec = codec;
    Input input = load(input_path, codec);
    Input other_input;
    if (!other_path.empty()) {
        uint32_t other_codec = raw_codec;
        other_input = load(other_path, other_codec);
        if (other_codec != codec) throw std::invalid_argument(input_path + " and " + other_path + " are in different G.711 laws");
    }

    callrec::Engine engine(store);
    {
        callrec::RecorderPtr rec, other;
        if (other_path.empty()) rec = engine.record(options, codec);
        else std::tie(rec, other) = engine.record_call(options, codec);
        callrec_status st{CALLREC_PHASE_WAITING, CALLREC_REASON_NONE};
        uint8_t beep[160];
        // Feeds one party's next 20 ms, or (its audio has ended) moves it on to `until`.
        auto step = [&st](callrec_recorder *r, const Input &in, size_t at, size_t until) {
            if (at < in.len)
                callrec::check(callrec_recorder_feed(r, in.audio() + at, std::min<size_t>(160, in.len - at), 60000,
                                                     nullptr, &st),
                               "feed");
            else
                callrec::check(callrec_recorder_push_at(r, until, nullptr, 0, &st), "push_at");
        };
        for (size_t at = 0; (at < input.len || at < other_input.len) && st.phase != CALLREC_PHASE_STOPPED; at += 160) {
            size_t played = 0;
            size_t until = at + std::max(at < input.len ? std::min<size_t>(160, input.len - at) : 0,
                                         at < other_input.len ? std::min<size_t>(160, other_input.len - at) : 0);
            callrec::check(callrec_recorder_playout(rec.get(), beep, sizeof beep, &played), "playout");
            // Faster than real time: feed waits for the writer (up to 60 s) instead of dropping.
            step(rec.get(), input, at, until);
            if (other && st.phase != CALLREC_PHASE_STOPPED) step(other.get(), other_input, at, until);
        }
        if (st.phase != CALLREC_PHASE_STOPPED) callrec::check(callrec_recorder_hangup(rec.get(), &st), "hangup");
    }  // the recorders are freed here
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
