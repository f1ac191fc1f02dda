"""Publishing from Python: `Result.publish_error` and the publisher's counters in `metrics()`.

The refused-store test needs no server: the operating system refuses every connection to a
closed loopback port, so every attempt fails and the age bound is reached (the answer is known
by construction). The test against a real S3 server runs when CALLREC_TEST_S3_URL
(`s3://bucket/prefix`) and the server's AWS_* environment are set, as
publish/tests/s3_e2e.py (scripts/test-publish) does; otherwise it says it skipped.
"""

import os
import pathlib
import socket

import pytest
from conftest import push_all, sound

import callrec

PUBLISH_KEYS = ("publish_uploaded", "publish_failed_attempts", "publish_gave_up", "publish_pending")
SECRET = "python-test-secret-0123456789"


def record_call(engine):
    """A 1 s recording ended by hangup; returns (finished, available)."""
    rec = engine.record({"id": "py-publish"})
    push_all(rec, sound(50))
    rec.hangup()
    finished = engine.next_event(timeout=60)
    available = engine.next_event(timeout=120)
    assert finished is not None and finished.kind == "finished", finished
    assert available is not None and available.kind == "available", available
    assert available.filename == finished.filename
    return finished, available


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_not_publishing_counts_nothing(tmp_path):
    with callrec.Engine(tmp_path / "store") as engine:
        finished, available = record_call(engine)
        assert finished.publish_error is None and available.publish_error is None
        assert available.file_available
        m = engine.metrics()
        assert m["recordings_finished"] == 1
        assert all(m[k] == 0 for k in PUBLISH_KEYS), m


@pytest.fixture
def refused_s3(monkeypatch):
    """The S3 environment of an object store that refuses every connection."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "python-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


def test_a_refused_store_gives_up_after_max_age_and_counts(tmp_path, refused_s3):
    store = tmp_path / "store"
    publish = {"url": "s3://recordings/py", "max_age_seconds": 1}
    with callrec.Engine(store, publish=publish) as engine:
        finished, available = record_call(engine)
        assert finished.publish_error is None
        assert available.reason == "error" and not available.file_available
        message = available.publish_error
        assert message is not None and message.startswith("upload to s3://recordings/py/rest_api/")
        assert SECRET not in message
        assert available.to_dict()["publish_error"] == message
        # Counted before the event was sent.
        m = engine.metrics()
        assert m["publish_failed_attempts"] >= 1, m
        assert (m["publish_gave_up"], m["publish_pending"], m["publish_uploaded"]) == (1, 0, 0), m
    assert (store / available.filename.lstrip("/")).is_file(), "the local file must be kept"


def test_one_publishing_engine_per_store(tmp_path, refused_s3):
    store = tmp_path / "store"
    with callrec.Engine(store, publish="s3://recordings/py"):
        with pytest.raises(OSError, match="already publishing") as refused:
            callrec.Engine(store, publish="s3://recordings/py")
        assert str(store) in str(refused.value) and f"pid {os.getpid()}," in str(refused.value)
        assert SECRET not in str(refused.value)
        with callrec.Engine(store):  # an engine that does not publish may share the store
            pass
    # Closed: the store is free again.
    with callrec.Engine(store, publish="s3://recordings/py"):
        pass


@pytest.mark.skipif(not os.environ.get("CALLREC_TEST_S3_URL"),
                    reason="needs an S3 server: CALLREC_TEST_S3_URL and AWS_* (scripts/test-publish)")
def test_a_verified_upload_is_counted(tmp_path):
    url = os.environ["CALLREC_TEST_S3_URL"]
    with callrec.Engine(tmp_path / "store", publish=url) as engine:
        finished, available = record_call(engine)
        assert available.file_available and available.reason == "hangup"
        assert available.publish_error is None
        m = engine.metrics()
        assert (m["publish_uploaded"], m["publish_failed_attempts"]) == (1, 0), m
        assert (m["publish_gave_up"], m["publish_pending"]) == (0, 0), m
        local = pathlib.Path(engine.store) / available.filename.lstrip("/")
        assert local.is_file()
