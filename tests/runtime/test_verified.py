"""sha256 stamps: a verified, unchanged model file is not hashed again; any change to it is hashed and caught."""

import os
import shutil
import time

import pytest

from onnxpipe import pipeline, verified
from onnxpipe.errors import IntegrityError
from onnxpipe.manifest import sha256_file


@pytest.fixture(scope="module")
def classifier_dir(models):
    return models.get("bert", "text-classification").onnx


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "stamps"
    monkeypatch.setenv("ONNXPIPE_CACHE_DIR", str(folder))
    return folder


def _aged(path, seconds=60):
    """Move a file's modification time into the past (its change time becomes now)."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_stamp_is_written_only_for_files_older_than_the_racy_window(tmp_path, cache):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc" * 1000)
    digest = sha256_file(path)
    assert not verified.remember(path, digest)  # just written: a same-size rewrite could keep its timestamps
    assert not verified.is_verified(path, digest)
    assert verified.remember(path, digest, now=time.time() + 10)
    assert verified.is_verified(path, digest)
    assert not verified.is_verified(path, "0" * 64)  # another manifest digest is not vouched for


def test_any_write_invalidates_the_stamp(tmp_path, cache):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc" * 1000)
    digest = sha256_file(path)
    assert verified.remember(path, digest, now=time.time() + 10)
    with open(path, "r+b") as handle:  # same size, one byte changed, timestamps put back
        stat = os.stat(path)
        handle.write(b"x")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert not verified.is_verified(path, digest)  # the change time moved even though mtime was restored


def test_unwritable_cache_only_costs_the_hash(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("ONNXPIPE_CACHE_DIR", str(blocker / "stamps"))
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc")
    assert not verified.remember(path, sha256_file(path), now=time.time() + 10)
    assert not verified.is_verified(path, sha256_file(path))


def test_pipeline_skips_the_hash_of_a_stamped_file_and_still_catches_corruption(classifier_dir, tmp_path, cache, monkeypatch):
    folder = tmp_path / "model"
    shutil.copytree(classifier_dir, folder)
    _aged(folder / "model.onnx")
    # make the file's change time old too: the stamp is refused while ctime is inside the racy window
    monkeypatch.setattr(verified, "RACY_SECONDS", -1e9)
    pipeline("text-classification", model=str(folder), dtype="fp32")
    assert len(list(cache.glob("*.json"))) == 1

    hashed = []
    monkeypatch.setattr("onnxpipe.model_folder.sha256_file", lambda path: hashed.append(path) or sha256_file(path))
    pipeline("text-classification", model=str(folder), dtype="fp32")
    assert hashed == []  # the stamp vouched for the unchanged file

    data = bytearray((folder / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.onnx does not match onnxpipe.json.*sha256"):
        pipeline("text-classification", model=str(folder), dtype="fp32")
    assert len(hashed) == 1
