"""Data: CIFAR tarballs, downloads (checksum, resume, offline), official C-sets, IDX, HF parquet, shapes10."""

import http.server
import threading

import formats
import numpy as np
import pytest
import torch

from robench.data import cifar, csets, load_split
from robench.data.download import data_dir, fetch
from robench.data.loader import DeviceLoader
from robench.errors import RobenchError


@pytest.fixture
def cifar10_tarball(tmp_path, monkeypatch):
    """A tiny real-format CIFAR-10 tarball served from a file:// URL with its true md5."""
    tarball = formats.cifar_tarball(tmp_path)
    spec = cifar.TARBALLS["cifar10"]
    monkeypatch.setitem(cifar.TARBALLS, "cifar10", cifar.Tarball(
        tarball.as_uri(), formats.md5(tarball), spec.folder, spec.train_files, spec.test_files,
        spec.label_key, spec.meta_file, spec.names_key))
    return tarball


def test_cifar_downloads_verifies_extracts_and_reads_pickles(cifar10_tarball):
    test = load_split("cifar10", train=False)
    train = load_split("cifar10", train=True)
    expected_images, expected_labels = formats.cifar_test_split(cifar10_tarball)
    assert train.images.shape == (50, 3, 32, 32) and train.images.dtype == torch.uint8
    # Pixel order: the pickle's R, G, B planes must come back as channels 0, 1, 2.
    assert torch.equal(test.images, torch.from_numpy(expected_images).permute(0, 3, 1, 2))
    assert test.labels.tolist() == expected_labels.tolist()
    assert test.classes[:2] == ["class0", "class1"] and test.num_classes == 10
    assert (data_dir() / "cifar-10-python.tar.gz").exists() and (data_dir() / "cifar-10-batches-py").is_dir()


def test_cifar_wrong_checksum_is_one_line_error_and_leaves_nothing(cifar10_tarball, monkeypatch):
    spec = cifar.TARBALLS["cifar10"]
    monkeypatch.setitem(cifar.TARBALLS, "cifar10", cifar.Tarball(spec.url, "0" * 32, *list(vars(spec).values())[2:]))
    with pytest.raises(RobenchError, match="checksum mismatch") as e:
        load_split("cifar10", train=False)
    assert "\n" not in str(e.value)
    assert not any(data_dir().iterdir())  # no .part, no tarball, no folder


def test_cifar_offline_error_names_the_file_to_put_where(monkeypatch):
    spec = cifar.TARBALLS["cifar10"]
    monkeypatch.setitem(cifar.TARBALLS, "cifar10", cifar.Tarball(
        "file:///nonexistent/cifar-10-python.tar.gz", spec.md5, *list(vars(spec).values())[2:]))
    with pytest.raises(RobenchError, match=r"put the file at .*cifar-10-python\.tar\.gz"):
        load_split("cifar10", train=True)


def test_cifar_placed_truncated_tarball_fails_checksum(cifar10_tarball):
    data_dir().mkdir(parents=True, exist_ok=True)
    (data_dir() / "cifar-10-python.tar.gz").write_bytes(cifar10_tarball.read_bytes()[:500])
    with pytest.raises(RobenchError, match="checksum mismatch"):
        load_split("cifar10", train=True)


def test_cifar_truncated_pickle_is_one_line_error(cifar10_tarball):
    load_split("cifar10", train=False)
    batch = data_dir() / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(RobenchError, match="cannot read .*test_batch"):
        load_split("cifar10", train=False)


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves one payload with HTTP Range support; the first response is cut short (a broken download)."""

    payload = b""
    cut_first = True
    requests: list = []

    def do_GET(self):
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
        type(self).requests.append(start)
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).cut_first:
            type(self).cut_first = False
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)  # drop the connection mid-body
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_fetch_resumes_a_broken_download_with_range(tmp_path):
    payload = bytes(range(256)) * 400
    _RangeHandler.payload, _RangeHandler.cut_first, _RangeHandler.requests = payload, True, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/blob.bin"
    dest = tmp_path / "blob.bin"
    md5 = formats.hashlib.md5(payload).hexdigest()
    try:
        with pytest.raises(RobenchError):
            fetch(url, dest, md5, "blob", size=len(payload))
        part = tmp_path / "blob.bin.part"
        assert part.exists() and 0 < part.stat().st_size < len(payload) and not dest.exists()
        fetch(url, dest, md5, "blob", size=len(payload))
    finally:
        server.shutdown()
    assert dest.read_bytes() == payload
    assert _RangeHandler.requests[1] == len(payload[: len(payload) // 3])  # the second request resumed


def test_official_cset_reads_severity_slices(tmp_path):
    images, labels = formats.tiny_images(12, 3), np.arange(12) % 10
    folder = formats.official_cset(tmp_path / "CIFAR-10-C", images, labels, corruptions=["fog"])
    cset = csets.OfficialCSet(folder)
    assert cset.n == 12 and cset.labels().tolist() == labels.tolist()
    s3 = cset.images("fog", 3)
    assert s3.shape == (12, 3, 32, 32)
    expected = np.clip(images.astype(int) - 60, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)
    assert torch.equal(s3, torch.from_numpy(expected))
    with pytest.raises(RobenchError, match="missing .*snow.npy"):
        cset.images("snow", 1)


def test_official_cset_truncated_or_misshaped_files_are_one_line_errors(tmp_path):
    images, labels = formats.tiny_images(8, 3), np.arange(8) % 10
    folder = formats.official_cset(tmp_path / "CIFAR-10-C", images, labels, corruptions=["fog", "snow"])
    raw = (folder / "fog.npy").read_bytes()
    (folder / "fog.npy").write_bytes(raw[: len(raw) // 2])
    np.save(folder / "snow.npy", np.zeros((40, 32, 32), np.uint8))
    cset = csets.OfficialCSet(folder)
    with pytest.raises(RobenchError, match="truncated"):
        cset.images("fog", 1)
    with pytest.raises(RobenchError, match="expected uint8"):
        cset.images("snow", 1)


def test_cset_is_found_in_data_dir_or_c_dir(tmp_path):
    images, labels = formats.tiny_images(4, 3), np.arange(4)
    assert csets.find("cifar10") is None
    formats.official_cset(tmp_path / "elsewhere" / "CIFAR-10-C", images, labels, corruptions=["fog"])
    assert csets.find("cifar10", tmp_path / "elsewhere") == tmp_path / "elsewhere" / "CIFAR-10-C"
    formats.official_cset(data_dir() / "CIFAR-10-C", images, labels, corruptions=["fog"])
    assert csets.find("cifar10") == data_dir() / "CIFAR-10-C"
    assert csets.find("shapes10") is None


def test_release_facts():
    release = csets.RELEASES["cifar10-c"]
    assert (release.record, release.filename, release.size) == (2535967, "CIFAR-10-C.tar", 2_918_471_680)
    assert release.md5 == "56bf5dcef84df0e2308c6dcbcbbd8499"
    assert "zenodo.org/records/2535967/files/CIFAR-10-C.tar" in release.url
    assert csets.RELEASES["cifar100-c"].record == 3555552


def test_idx_reader_pads_and_replicates(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (7, 28, 28), dtype=np.uint8), np.arange(7, dtype=np.uint8)
    folder = data_dir() / "mnist"
    formats.idx_file(folder / "t10k-images-idx3-ubyte.gz", images)
    formats.idx_file(folder / "t10k-labels-idx1-ubyte", labels, compress=False)  # plain files work too
    split = load_split("mnist", train=False)
    assert split.images.shape == (7, 3, 32, 32)
    assert torch.equal(split.images[:, 1, 2:30, 2:30], torch.from_numpy(images))
    assert split.images[:, :, :2].sum() == 0 and torch.equal(split.images[:, 0], split.images[:, 2])
    assert "zero-padded" in split.preprocessing
    formats.idx_file(folder / "t10k-images-idx3-ubyte.gz", images)
    raw = (folder / "t10k-images-idx3-ubyte.gz").read_bytes()
    import gzip

    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(gzip.decompress(raw)[:-100]))
    with pytest.raises(RobenchError, match="truncated"):
        load_split("mnist", train=False)


def test_hf_parquet_dataset_columns_detected_or_named(tmp_path):
    pytest.importorskip("datasets")
    folder = formats.hf_parquet_dataset(tmp_path / "hfset", size=24)
    with pytest.raises(RobenchError, match="cannot find the image column"):
        load_split(f"hf:{folder}", train=True)
    split = load_split(f"hf:{folder}", train=True, image_column="picture", label_column="category")
    assert split.images.shape == (40, 3, 24, 24) and split.num_classes == 3 and split.classes == ["a", "b", "c"]
    resized = load_split(f"hf:{folder}", train=False, image_column="picture", label_column="category", image_size=32)
    assert resized.images.shape == (16, 3, 32, 32)
    with pytest.raises(RobenchError, match="has no column 'nope'"):
        load_split(f"hf:{folder}", train=True, image_column="nope", label_column="category")


def test_shapes10_is_deterministic_balanced_and_prefix_stable():
    a = load_split("shapes10", train=False)
    b = load_split("shapes10", train=False, limit=700)
    assert a.images.shape == (2000, 3, 32, 32) and a.num_classes == 10
    assert torch.equal(a.images[:700], b.images) and torch.equal(a.labels[:700], b.labels)
    counts = torch.bincount(a.labels, minlength=10)
    assert counts.min() >= 180 and counts.max() <= 220
    train = load_split("shapes10", train=True, limit=1024)
    assert not torch.equal(train.images[:700], a.images[:700])  # train and test differ
    # Not trivial: images vary a lot within a class.
    assert a.images[a.labels == 0].float().std(dim=0).mean() > 40


def test_device_loader_permutes_each_epoch_and_covers_the_split():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2).contiguous()
    labels = torch.arange(10)
    loader = DeviceLoader(images, labels, batch_size=4, device="cpu", seed=1)
    epoch1 = torch.cat([l for _, l in loader])
    epoch2 = torch.cat([l for _, l in loader])
    assert len(loader) == 2 and epoch1.numel() == 8 and len(set(epoch1.tolist())) == 8
    assert not torch.equal(epoch1, epoch2)
    again = DeviceLoader(images, labels, batch_size=4, device="cpu", seed=1)
    assert torch.equal(torch.cat([l for _, l in again]), epoch1)
    for x, l in DeviceLoader(images, labels, batch_size=4, device="cpu", shuffle=False, drop_last=False):
        assert torch.equal(x[:, 0, 0, 0].long(), l)
    assert len(DeviceLoader(images, labels, batch_size=64, device="cpu")) == 1


def test_unknown_dataset_lists_choices():
    with pytest.raises(RobenchError, match="unknown dataset 'cifar11'.*cifar10"):
        load_split("cifar11", train=True)
