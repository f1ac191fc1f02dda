"""End-to-end publishing checks against a real S3 server (run by scripts/test-publish).

The server is started and stopped here by PID (`WEED` is its command, SeaweedFS by default);
everything read back goes through boto3, an S3 client independent of callrec's, so the checks
hold for any S3-compatible server. Prints one line per passed check and `N passed, 0 failed`.

Usage: s3_e2e.py CALLREC_BIN WORKDIR [C_HOST [PYTHON_WITH_CALLREC [C_PUBLISH_TEST]]]

C_HOST is examples/c/record_file built against the C library; PYTHON_WITH_CALLREC a Python
with the callrec wheel and pytest installed. Each runs the same publish path as its host.
C_PUBLISH_TEST is ffi/tests/c/test_publish.c built (the C API's publish counters); the
Python bindings' counters and `publish_error` are checked by python/tests/test_publish.py,
run here with the server's environment. `callrec serve
--publish` is checked with ffmpeg as the RTP sender and a webhook receiver here that looks the
object up (with boto3) the moment recording_available_page arrives. S3_E2E_ONLY=serve runs only
those checks (for development; scripts/test-publish runs them all).
"""

import base64
import hashlib
import http.server
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import botocore.exceptions

CALLREC, WORK = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
C_HOST = sys.argv[3] if len(sys.argv) > 3 else None
PY_HOST = sys.argv[4] if len(sys.argv) > 4 else None
C_TEST = sys.argv[5] if len(sys.argv) > 5 else None
ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello.wav"
ACCESS, SECRET = "callrec-test", "callrec-test-secret-0123456789"
BUCKET = "recordings"
passed = 0


def check(name):
    global passed
    passed += 1
    print(f"ok {passed}: {name}", flush=True)


def free_ports(n):
    """n loopback ports p with p + 10000 free too (SeaweedFS puts gRPC there)."""
    ports = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 10000 > 65535 or p in ports:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 10000))
        except OSError:
            continue
        ports.append(p)
    return ports


MASTER, VOLUME, FILER, S3 = free_ports(4)
ENDPOINT = f"http://127.0.0.1:{S3}"
(WORK / "weed-data").mkdir(parents=True, exist_ok=True)
(WORK / "s3.json").write_text(json.dumps({"identities": [{
    "name": "callrec", "credentials": [{"accessKey": ACCESS, "secretKey": SECRET}],
    "actions": ["Read", "Write", "List", "Tagging"]}]}))
WEED = os.environ.get("WEED", "weed")


class Server:
    """The S3 server process, stopped by its PID."""

    def __init__(self):
        self.proc = None

    def start(self):
        log = open(WORK / "weed.log", "ab")
        self.proc = subprocess.Popen(
            [WEED, "server", f"-dir={WORK / 'weed-data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={MASTER}", f"-volume.port={VOLUME}", f"-filer.port={FILER}",
             "-s3", f"-s3.port={S3}", f"-s3.config={WORK / 's3.json'}",
             "-s3.port.iceberg=0", "-s3.port.lance=0",
             "-master.volumeSizeLimitMB=64", "-volume.max=20",
             # One master: a restart need not wait 10 s for a raft election.
             "-master.electionTimeout=1s"],
            stdout=log, stderr=log)
        began = time.monotonic()
        deadline = began + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"the S3 server exited: see {WORK / 'weed.log'}")
            try:
                s3().list_objects_v2(Bucket=BUCKET, MaxKeys=1)
                print(f"   (S3 server answering after {time.monotonic() - began:.1f} s)",
                      flush=True)
                return
            except botocore.exceptions.ClientError as e:
                if e.response["Error"]["Code"] == "NoSuchBucket":
                    print(f"   (S3 server answering after {time.monotonic() - began:.1f} s)",
                          flush=True)
                    return
            except (botocore.exceptions.BotoCoreError, OSError):
                pass
            time.sleep(0.5)
        sys.exit("the S3 server did not answer within 120 s")

    def stop(self):
        """An outage as a crash does it (SIGKILL): SeaweedFS's graceful stop takes ~25 s, and
        nothing it holds unsynced is read again (each object is read back when published)."""
        began = time.monotonic()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        print(f"   (S3 server stopped in {time.monotonic() - began:.1f} s)", flush=True)


def s3(secret=SECRET):
    # A session of its own: the webhook receiver's threads make clients too.
    return boto3.session.Session().client(
        "s3", endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id=ACCESS,
        aws_secret_access_key=secret,
        config=boto3.session.Config(retries={"max_attempts": 1}, connect_timeout=2,
                                    read_timeout=10))


def env(secret=SECRET):
    e = dict(os.environ)
    e.update(AWS_ENDPOINT_URL=ENDPOINT, AWS_ALLOW_HTTP="true", AWS_REGION="us-east-1",
             AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=secret)
    return e


class Cli:
    """A callrec process (or another host) whose JSON lines are read as they come."""

    def __init__(self, args, secret=SECRET, program=None):
        self.proc = subprocess.Popen([str(program or CALLREC), *args], stdout=subprocess.PIPE,
                                     env=env(secret))
        self.buf = b""

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)["result"]

    def finish(self):
        rest = self.proc.stdout.read()
        code = self.proc.wait(60)
        lines = [json.loads(l)["result"] for l in (self.buf + rest).splitlines() if l]
        return code, lines


def key_of(prefix, filename):
    return f"{prefix}/{filename.lstrip('/')}"


def assert_published(store, prefix, result, client=None):
    """The object exists, its bytes are the local file's, its metadata carries the result."""
    client = client or s3()
    key = key_of(prefix, result["filename"])
    head = client.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    local = (store / result["filename"].lstrip("/")).read_bytes()
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body == local, "the object's bytes differ from the local file"
    meta = head["Metadata"]
    assert meta["reason"] == result["reason"], meta
    assert meta["seconds_duration"] == f"{result['seconds_duration']:.1f}", meta
    assert meta["contains_sound"] == str(result["contains_sound"]).lower(), meta
    assert meta.get("barge_in_digit") == result.get("barge_in_digit"), meta
    digest = hashlib.sha256(local)
    assert meta["sha256"] == digest.hexdigest(), meta
    # A server that keeps the PUT's x-amz-checksum-sha256 must agree with the file.
    if head.get("ChecksumSHA256"):
        assert head["ChecksumSHA256"] == base64.b64encode(digest.digest()).decode(), head
    return meta


def absent(key):
    try:
        s3().head_object(Bucket=BUCKET, Key=key)
        return False
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound")


def main():
    server = Server()
    try:
        server.start()
        subprocess.run([WEED, "shell", f"-master=127.0.0.1:{MASTER}"],
                       input=f"s3.bucket.create -name {BUCKET}\n".encode(), check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
        s3().head_bucket(Bucket=BUCKET)
        if os.environ.get("S3_E2E_ONLY") != "serve":
            run_checks(server)
        serve_checks(server)
    finally:
        server.stop()
    print(f"{passed} passed, 0 failed")


def run_checks(server):
    # 1. The README command: available only once the object is there, bytes and metadata right.
    store = WORK / "store-cli"
    cli = Cli(["record", str(HELLO), "--store", str(store), "--publish", f"s3://{BUCKET}/test",
               "--options", '{"id":"call-7"}'])
    finished = cli.line(60)
    assert finished and finished["file_available"] is False, finished
    available = cli.line(60)
    # Read back the moment the line arrives: the object must already be there.
    meta = assert_published(store, "test", available)
    assert available["file_available"] is True and available["filename"] == finished["filename"]
    assert meta["id"] == "call-7"
    code, rest = cli.finish()
    assert code == 0 and rest == [], (code, rest)
    check("record --publish: available after the object exists; bytes and metadata match")

    # 2. Barge-in and encryption: the digit rides along; the encrypted file goes up as it is.
    key, iv = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", "00" * 16
    options = json.dumps({"id": "enc", "encryption_cipher": {
        "type": "aesctr", "key": key, "initialisation_vector": iv}})
    cli = Cli(["record", str(HELLO), "--store", str(store), "--publish", f"s3://{BUCKET}/enc",
               "--digit", "1.5:#", "--options", options])
    code, lines = cli.finish()
    assert code == 0 and len(lines) == 2, (code, lines)
    assert lines[1]["reason"] == "bargein" and lines[1]["file_available"] is True, lines
    meta = assert_published(store, "enc", lines[1])
    assert meta["barge_in_digit"] == "#"
    local = (store / lines[1]["filename"].lstrip("/")).read_bytes()
    assert not local.startswith(b"RIFF"), "the encrypted recording was stored in the clear"
    plain = subprocess.run(["openssl", "enc", "-d", "-aes-256-ctr", "-K", key, "-iv", iv],
                           input=s3().get_object(Bucket=BUCKET, Key=key_of(
                               "enc", lines[1]["filename"]))["Body"].read(),
                           capture_output=True, check=True).stdout
    assert plain.startswith(b"RIFF") and b"WAVE" in plain[:12]
    check("encrypted recording uploaded as it is (openssl decrypts the object); barge_in_digit")

    # 3. The store stops before the recording ends and returns 10 s later.
    store = WORK / "store-outage"
    cli = Cli(["record", str(HELLO), "--store", str(store), "--publish", f"s3://{BUCKET}/outage",
               "--realtime", "--hangup-at", "3"])
    time.sleep(0.5)
    server.stop()
    finished = cli.line(60)
    assert finished and finished["reason"] == "hangup", finished
    assert cli.line(10) is None, "available while the object store was down"
    server.start()
    available = cli.line(180)
    assert available and available["file_available"] is True, available
    assert_published(store, "outage", available)
    code, rest = cli.finish()
    assert code == 0 and rest == [], (code, rest)
    check("object store down for 10 s: available after it returned, object correct")

    # 4. kill -9 between finished and the upload: a new engine on the store publishes it once.
    store = WORK / "store-crash"
    server.stop()
    cli = Cli(["record", str(HELLO), "--store", str(store), "--publish", f"s3://{BUCKET}/crash"])
    finished = cli.line(60)
    assert finished and finished["file_available"] is False, finished
    cli.proc.send_signal(signal.SIGKILL)
    cli.proc.wait()
    journal = (store / ".callrec-outbox" / "journal").read_text()
    assert finished["filename"] in journal
    server.start()
    assert absent(key_of("crash", finished["filename"]))
    code, lines = Cli(["publish", "--store", str(store), "--publish",
                       f"s3://{BUCKET}/crash"]).finish()
    assert code == 0 and len(lines) == 1, (code, lines)
    assert lines[0]["filename"] == finished["filename"] and lines[0]["file_available"] is True
    assert {k: v for k, v in lines[0].items() if k != "file_available"} == \
        {k: v for k, v in finished.items() if k != "file_available"}, (lines, finished)
    assert_published(store, "crash", lines[0])
    code, again = Cli(["publish", "--store", str(store), "--publish",
                       f"s3://{BUCKET}/crash"]).finish()
    assert code == 0 and again == [], again
    check("kill -9 after finished: the next engine uploads it and reports it once")

    # 5. A bad credential: error after the retry bound, local file kept, cause named.
    store = WORK / "store-badkey"
    wrong = "not-the-secret-4242"
    code, lines = Cli(["record", str(HELLO), "--store", str(store), "--publish",
                       f"s3://{BUCKET}/badkey", "--publish-max-age", "3"], secret=wrong).finish()
    # Exit 3: the recording's reason is `error` (not available), which a script must see.
    assert code == 3 and len(lines) == 2, (code, lines)
    bad = lines[1]
    assert bad["reason"] == "error" and bad["file_available"] is False, bad
    message = bad["publish_error"]
    assert wrong not in message and SECRET not in message, message
    assert any(w in message for w in ("403", "Forbidden", "SignatureDoesNotMatch",
                                      "AccessDenied", "InvalidAccessKeyId")), message
    assert f"s3://{BUCKET}/badkey/rest_api/" in message, message
    assert (store / bad["filename"].lstrip("/")).is_file()
    assert absent(key_of("badkey", bad["filename"]))
    print(f"   publish_error: {message}")
    check("bad credential: error after the retry bound, local file kept, cause named")

    # 6. --publish-remove-local: the local copy goes only after the verified upload.
    store = WORK / "store-remove"
    code, lines = Cli(["record", str(HELLO), "--store", str(store), "--publish",
                       f"s3://{BUCKET}/moved", "--publish-remove-local"]).finish()
    assert code == 0 and lines[1]["file_available"] is True, lines
    assert not (store / lines[1]["filename"].lstrip("/")).exists()
    body = s3().get_object(Bucket=BUCKET, Key=key_of("moved", lines[1]["filename"]))["Body"]
    assert body.read().startswith(b"RIFF")
    check("--publish-remove-local removes the local copy after the verified upload")

    # 7. Bad URLs are refused with exit 2 and the field named.
    for url in ("http://x/y", "s3://UPPER/x"):
        r = subprocess.run([str(CALLREC), "record", str(HELLO), "--store", str(WORK / "bad"),
                            "--publish", url], capture_output=True, text=True, env=env())
        assert r.returncode == 2 and "--publish" in r.stderr, (url, r.returncode, r.stderr)
    check("a bad --publish URL exits 2 naming the option")

    # 8. The sink's multipart path (large files), read back by boto3 byte for byte.
    r = subprocess.run(["cargo", "test", "-q", "-p", "callrec-publish", "--test", "s3_sink", "--",
                        "--ignored", "--nocapture"], cwd=ROOT, capture_output=True, text=True,
                       env={**env(), "CALLREC_TEST_S3_URL": f"s3://{BUCKET}"})
    print(r.stdout[-2000:], r.stderr[-2000:])
    assert r.returncode == 0, "the sink's multipart test failed"
    _, key, size, digest, meta_key = next(
        l for l in r.stdout.splitlines() if l.startswith("UPLOADED ")).split()
    head = s3().head_object(Bucket=BUCKET, Key=key)
    body = s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert len(body) == int(size) and hashlib.sha256(body).hexdigest() == digest
    assert head["Metadata"][meta_key] == digest and head["Metadata"]["id"] == "big", head
    check("a 12 MiB file goes up in 5 MiB parts and reads back whole, checksum and metadata")

    # 9, 10. The C and Python hosts: the same path through their engine configuration.
    hosts = [("C", C_HOST, ["--config", json.dumps({"publish": f"s3://{BUCKET}/c"})], "c"),
             ("Python", PY_HOST, None, "py")]
    for name, program, extra, prefix in hosts:
        if not program:
            print(f"SKIPPED: the {name} host check (no {name} host given)")
            continue
        store = WORK / f"store-{prefix}"
        if name == "C":
            cmd = [str(HELLO), "--store", str(store), *extra]
        else:
            cmd = [str(Path(__file__).with_name("host_python.py")), str(store),
                   f"s3://{BUCKET}/{prefix}", str(HELLO)]
        host = Cli(cmd, program=program)
        finished = host.line(60)
        assert finished and finished["file_available"] is False, finished
        available = host.line(120)
        assert_published(store, prefix, available)
        assert available["file_available"] is True, available
        assert available["filename"] == finished["filename"]
        code, rest = host.finish()
        assert code == 0 and rest == [], (code, rest)
        check(f"{name} host: publish in the engine configuration, available after a verified upload")

    # The bindings' publish counters (and Python's Result.publish_error): a verified upload, and
    # a bad credential that gives up after the age bound.
    if C_TEST:
        r = subprocess.run([C_TEST, str(WORK / "c-test"), f"s3://{BUCKET}/c-test"],
                           capture_output=True, text=True, env=env(), timeout=300)
        print(r.stdout[-2000:], r.stderr[-2000:])
        assert r.returncode == 0 and r.stdout.rstrip().endswith(" passed, 0 failed"), r.returncode
        check("C API: callrec_metrics' publish counters after an upload and after giving up")
    else:
        print("SKIPPED: the C API publish counters (no C test given)")
    if PY_HOST:
        r = subprocess.run([PY_HOST, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                            str(ROOT / "python" / "tests" / "test_publish.py")],
                           cwd=WORK, capture_output=True, text=True, timeout=300,
                           env={**env(), "CALLREC_TEST_S3_URL": f"s3://{BUCKET}/py-test"})
        print(r.stdout[-2000:], r.stderr[-2000:])
        assert r.returncode == 0 and "4 passed" in r.stdout and "skipped" not in r.stdout, \
            "python/tests/test_publish.py failed"
        check("Python: metrics()' publish counters and Result.publish_error (pytest)")


class WebApp:
    """The web app behind `callrec serve`: records every webhook it gets; on
    recording_available_page it first looks the object up in the S3 server, so what was there
    at the moment the page was called is known."""

    def __init__(self, prefix):
        self.calls, self.cond = [], threading.Condition()
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                result = body["action_result"]["result"]
                page = self.path.rsplit("/", 1)[-1]
                call = {"page": page, "result": result, "object_present": None}
                if page == "available":
                    try:
                        s3().head_object(Bucket=BUCKET, Key=key_of(prefix, result["filename"]))
                        call["object_present"] = True
                    except botocore.exceptions.ClientError:
                        call["object_present"] = False
                with app.cond:
                    app.calls.append(call)
                    app.cond.notify_all()
                self.send_response(204 if page == "available" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, filename):
        with self.cond:
            return [c for c in self.calls if c["result"]["filename"] == filename]

    def wait(self, filename, page, timeout):
        """The first call of `page` for the recording, waiting up to `timeout` s; None if none."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [c for c in self.calls
                         if c["result"]["filename"] == filename and c["page"] == page]
                left = deadline - time.monotonic()
                if found or left <= 0:
                    return found[0] if found else None
                self.cond.wait(left)


def free_udp_range(count):
    """An even loopback UDP port p with p .. p + count - 1 all free: serve hands out even RTP
    ports with RTCP on the odd one above, and rests a pair after each call."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1] & ~1
        if p < 1024 or p + count > 65535:
            continue
        held = []
        try:
            for port in range(p, p + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return p


def rtp_sender(port, seconds=None):
    """ffmpeg sending examples/hello.wav (or its first `seconds`) as 20 ms PCMA RTP, in real
    time (a started process)."""
    limit = ["-t", str(seconds)] if seconds else []
    return subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", *limit, "-i", str(HELLO),
                             "-af", "asetnsamples=n=160:p=0", "-c:a", "pcm_alaw", "-packetsize",
                             "172", "-f", "rtp", f"rtp://127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL)


def send_rtp(port, seconds=None):
    """rtp_sender, waited for."""
    assert rtp_sender(port, seconds).wait(120) == 0, "ffmpeg failed"


def serve_checks(server):
    """`callrec serve --publish`: RTP in, next_page, then recording_available_page only once the
    object is stored; an object store that is down delays the second page, nothing is lost."""
    prefix, store = "serve", WORK / "store-serve"
    app = WebApp(prefix)
    (api_port,) = free_ports(1)
    rtp = free_udp_range(20)
    token = base64.b16encode(os.urandom(12)).decode()
    (WORK / "serve-token").write_text(token + "\n")
    api = f"http://127.0.0.1:{api_port}"

    def call(method, path, body=None):
        request = urllib.request.Request(
            api + path, method=method, data=json.dumps(body).encode() if body else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read()
            return json.loads(text) if answer.headers.get_content_type() == "application/json" \
                else text.decode()

    def start_record(record_id):
        pages = {"next_page": {"url": "next"}, "recording_available_page": {"url": "available"}}
        answer = call("POST", "/v1/records", {"record": {"id": record_id, **pages},
                                              "media": {"codec": "alaw", "payload_type": 8}})
        return answer["record_id"], answer["rtp"]["port"], answer["filename"]

    log = open(WORK / "serve.log", "ab")

    def start_serve():
        proc = subprocess.Popen(
            [str(CALLREC), "serve", "--listen", f"127.0.0.1:{api_port}", "--rtp-ports",
             f"{rtp}-{rtp + 19}", "--store", str(store), "--app-url",
             f"http://127.0.0.1:{app.port}/app/", "--token-file", str(WORK / "serve-token"),
             "--publish", f"s3://{BUCKET}/{prefix}", "--rtp-timeout-ms", "3000",
             "--webhook-backoff-ms", "100"], env=env(), stdout=log, stderr=log)
        for _ in range(300):
            try:
                urllib.request.urlopen(api + "/v1/health", timeout=1).read()
                return proc
            except OSError:
                assert proc.poll() is None, f"serve exited: see {WORK / 'serve.log'}"
                time.sleep(0.1)
        raise AssertionError(f"serve did not answer: see {WORK / 'serve.log'}")

    proc = start_serve()
    try:

        # A whole call: next_page (file_available false), then recording_available_page with
        # the object already in the store, byte-equal to the store's file, with the metadata.
        _, port, filename = start_record("serve-1")
        send_rtp(port)
        nxt = app.wait(filename, "next", 60)
        assert nxt and nxt["result"]["file_available"] is False, nxt
        avail = app.wait(filename, "available", 120)
        assert avail, "no recording_available_page"
        assert avail["object_present"] is True, "recording_available_page before the object"
        assert avail["result"]["file_available"] is True, avail
        assert app.of(filename).index(nxt) < app.of(filename).index(avail)
        meta = assert_published(store, prefix, avail["result"])
        assert meta["id"] == "serve-1" and avail["result"]["reason"] == "silence", (meta, avail)
        check("serve --publish: RTP from ffmpeg; next_page, then recording_available_page with "
              "the object stored, byte-equal, metadata")

        # The object store is down when the call ends: next_page at once, the available page
        # only after the store is back, then with the object in place.
        server.stop()
        record_id, port, filename = start_record("serve-outage")
        send_rtp(port, seconds=2)
        call("POST", f"/v1/records/{record_id}/hangup")
        nxt = app.wait(filename, "next", 60)
        assert nxt and nxt["result"]["reason"] == "hangup", nxt
        assert nxt["result"]["file_available"] is False, nxt
        assert app.wait(filename, "available", 5) is None, "available while the store was down"
        server.start()
        avail = app.wait(filename, "available", 120)
        assert avail and avail["object_present"] is True, avail
        assert avail["result"]["file_available"] is True, avail
        assert_published(store, prefix, avail["result"])
        check("serve --publish, object store down when the call ended: recording_available_page "
              "only after it returned, object correct")

        # The publisher's counters on /metrics (Prometheus text): two uploads, the outage's
        # failed attempts, nothing given up or pending.
        metrics = dict(line.split() for line in call("GET", "/metrics").splitlines()
                       if line.startswith("callrec_publish_"))
        assert metrics["callrec_publish_uploaded_total"] == "2", metrics
        assert int(metrics["callrec_publish_failed_attempts_total"]) >= 1, metrics
        assert metrics["callrec_publish_gave_up_total"] == "0", metrics
        assert metrics["callrec_publish_pending"] == "0", metrics
        check(f"serve /metrics: the publisher's counters ({metrics})")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
    assert code == 0, f"serve exited {code}: see {WORK / 'serve.log'}"
    pages = {}
    for c in app.calls:
        pages.setdefault(c["result"]["filename"], []).append(c["page"])
    assert all(p == ["next", "available"] for p in pages.values()) and len(pages) == 2, pages
    check("serve --publish: SIGTERM exits 0; each recording got each page exactly once")

    # kill -9 with calls in progress, then a restart on the same store: every recovered
    # recording is published, and its two pages arrive once each (recovered: true), the
    # available one with the object already stored.
    calls_before = len(app.calls)
    proc = start_serve()
    try:
        started = [start_record(f"serve-crash-{n}") for n in range(3)]
        senders = [rtp_sender(port, seconds=6) for _, port, _ in started]
        for record_id, _, _ in started:  # each call has audio on disk (the writer's batches)
            for _ in range(100):
                if call("GET", f"/v1/records/{record_id}")["rtp"]["samples"] >= 16000:
                    break
                time.sleep(0.1)
        time.sleep(1.5)
    finally:
        proc.kill()
        proc.wait(30)
        for sender in senders:
            sender.kill()
            sender.wait(30)
    parts = sorted(store.rglob("*.wav.part"))
    assert len(parts) == 3, parts
    assert all(app.wait(f, "next", 0) is None for _, _, f in started), "a page before the crash"
    proc = start_serve()
    try:
        for _, _, filename in started:
            nxt = app.wait(filename, "next", 60)
            assert nxt and nxt["result"].get("recovered") is True, nxt
            assert nxt["result"]["file_available"] is False, nxt
            avail = app.wait(filename, "available", 120)
            assert avail and avail["result"].get("recovered") is True, avail
            assert avail["object_present"] is True, "recording_available_page before the object"
            assert_published(store, prefix, avail["result"])
            assert avail["result"]["seconds_duration"] >= 2.0, avail
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
    assert code == 0, f"serve exited {code}: see {WORK / 'serve.log'}"
    pages = {}
    for c in app.calls[calls_before:]:
        pages.setdefault(c["result"]["filename"], []).append(c["page"])
    assert sorted(pages) == sorted(f for _, _, f in started), pages
    assert all(p == ["next", "available"] for p in pages.values()), pages
    app.server.shutdown()
    check("serve --publish, kill -9 with 3 calls in progress, restart: each recovered recording "
          "published, next_page then recording_available_page once each (recovered: true), "
          "the object stored first")


if __name__ == "__main__":
    main()
