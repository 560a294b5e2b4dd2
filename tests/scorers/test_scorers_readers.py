"""Prediction readers that never follow a reference and know a file's size before decoding.

Each attack is first shown to work against ``tifffile.imread`` (the reader the
scorer used to call), so the test fails if the safe reader is replaced by it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
import uuid
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import scorers
from scorers.files import ItemError, read_labels, read_mask, read_table
from scorers.tiff import ReadError, read_tiff


def _labels(shape=(2, 32, 32)) -> np.ndarray:
    out = np.zeros(shape, np.uint16)
    out[..., 4:14, 4:14] = 1
    out[..., 18:30, 16:28] = 2
    return out


def ome_xml(own: str, other: str, *, frames: int = 2, size: int = 32) -> str:
    """OME-XML of a 2-frame series whose second plane lies in ``other`` (the attack of issue 9)."""
    own_uuid = f"urn:uuid:{uuid.uuid4()}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="{own_uuid}">'
        f'<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" '
        f'SizeX="{size}" SizeY="{size}" SizeZ="1" SizeC="1" SizeT="{frames}">'
        '<Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
        f'<TiffData FirstT="0" IFD="0" PlaneCount="1"><UUID FileName="{own}">{own_uuid}</UUID></TiffData>'
        f'<TiffData FirstT="1" IFD="1" PlaneCount="1"><UUID FileName="{other}">urn:uuid:{uuid.uuid4()}'
        "</UUID></TiffData></Pixels></Image></OME>"
    )


def write_ome_attack(path: Path, other: str) -> None:
    """One blank frame of its own; the second frame is "in" ``other``."""
    tifffile.imwrite(path, np.zeros((32, 32), np.uint16), description=ome_xml(path.name, other),
                     metadata=None)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    labels, pred = tmp_path / "labels", tmp_path / "pred"
    labels.mkdir()
    pred.mkdir()
    tifffile.imwrite(labels / "a.tif", _labels())
    return pred, labels


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_ome_tiff_naming_the_labels_is_refused(folders, how):
    pred, labels = folders
    other = "../labels/a.tif" if how == "relative" else str(labels / "a.tif")
    write_ome_attack(pred / "a.tif", other)
    # the attack works against tifffile.imread: the second frame is read from the labels
    followed = tifffile.imread(pred / "a.tif")
    assert followed.shape == (2, 32, 32) and np.array_equal(followed[1], _labels()[1])
    with pytest.raises(ItemError, match="its OME-XML refers to another file .*a.tif"):
        read_labels(pred / "a.tif")
    result = scorers.score_folder(pred, labels)
    assert not result.ok and result.metrics["sbd"] is None
    assert "a.tif: its OME-XML refers to another file" in result.errors[0]


def test_ome_tiff_naming_another_evaluations_predictions_is_refused(tmp_path):
    ledger = tmp_path / "results" / "evaluations"
    victim, attacker = ledger / "victim-1" / "predictions", ledger / "attacker-1" / "predictions"
    victim.mkdir(parents=True)
    attacker.mkdir(parents=True)
    tifffile.imwrite(victim / "a.tif", _labels())
    write_ome_attack(attacker / "a.tif", "../../victim-1/predictions/a.tif")
    assert np.array_equal(tifffile.imread(attacker / "a.tif")[1], _labels()[1])
    write_ome_attack(attacker / "b.tif", "../../../evaluations/victim-1/predictions/a.tif")
    for name in ("a.tif", "b.tif"):
        with pytest.raises(ItemError, match="refers to another file.*victim-1"):
            read_labels(attacker / name)


def test_single_file_ome_tiff_is_read(tmp_path):
    """OME-TIFF naming only itself, and tifffile's own OME writer, stay readable."""
    labels = _labels()
    tifffile.imwrite(tmp_path / "own.tif", labels, ome=True)
    assert np.array_equal(read_labels(tmp_path / "own.tif"), labels)
    path = tmp_path / "self.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(labels, description=ome_xml("self.tif", "self.tif"), metadata=None)
    assert np.array_equal(read_labels(path), labels)


def test_companion_metadata_file_is_refused(tmp_path):
    path = tmp_path / "a.tif"
    xml = ('<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
           '<BinaryOnly MetadataFile="../labels/meta.companion.ome" UUID="urn:uuid:1"/></OME>')
    tifffile.imwrite(path, _labels()[0], description=xml, metadata=None)
    with pytest.raises(ItemError, match="refers to another file .a companion or external file"):
        read_labels(path)


def test_only_regular_files_are_read(folders, tmp_path):
    pred, labels = folders
    (pred / "a.tif").symlink_to(labels / "a.tif")
    with pytest.raises(ItemError, match="is a symlink"):
        read_labels(pred / "a.tif")
    assert read_labels(pred / "a.tif", trusted=True).shape == (2, 32, 32)  # annexed truth files
    os.mkfifo(pred / "b.tif")  # would block a reader that opens it plainly
    with pytest.raises(ItemError, match="not a regular file"):
        read_labels(pred / "b.tif")
    (pred / "c.csv").symlink_to(tmp_path / "elsewhere.csv")
    with pytest.raises(ItemError, match="is a symlink"):
        read_table(pred / "c.csv")


def test_pages_are_read_as_tifffile_writes_them(tmp_path):
    for i, arr in enumerate([_labels()[0], _labels(), _labels().astype(np.uint8)]):
        tifffile.imwrite(tmp_path / f"{i}.tif", arr, compression="zlib" if i == 1 else None)
        got = read_labels(tmp_path / f"{i}.tif")
        assert got.dtype == arr.dtype and np.array_equal(got, arr)
    tifffile.imwrite(tmp_path / "m.tif", (_labels() > 0).astype(np.uint8), compression="lzma")
    assert read_mask(tmp_path / "m.tif").sum() == (_labels() > 0).sum()
    # one incompressible 2 MiB block: checked in slices, read whole
    noise = np.random.default_rng(0).integers(0, 2**16, (1024, 1024), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "n.tif", noise, compression="zlib", rowsperstrip=1024)
    assert np.array_equal(read_labels(tmp_path / "n.tif", expect_shape=(1024, 1024)), noise)


def _peak_mib(fn) -> float:
    tracemalloc.start()
    try:
        fn()
    except Exception:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def _zlib_zeros(mib: int) -> bytes:
    c = zlib.compressobj(9)
    return b"".join(c.compress(bytes(2**20)) for _ in range(mib)) + c.flush()


def test_zlib_bomb_declaring_a_huge_image_is_refused_before_decoding(tmp_path):
    """3.6 GB of declared pixels in a few hundred bytes: refused from the header alone."""
    path = tmp_path / "bomb.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(iter([_zlib_zeros(1)]), shape=(60_000, 60_000), dtype=np.uint8, compression="zlib",
                  rowsperstrip=60_000)
    assert path.stat().st_size < 10_000
    with pytest.raises(ReadError, match=r"declares 3600000000 bytes .* nothing was decoded"):
        read_tiff(path)
    assert _peak_mib(lambda: read_tiff(path)) < 8
    # the truth's shape refuses it too, before any size bound
    with pytest.raises(ItemError, match=r"shape \(60000, 60000\) differs from the truth's \(32, 32\)"):
        read_labels(path, expect_shape=(32, 32))


def test_zlib_bomb_in_a_small_image_is_refused_with_bounded_memory(tmp_path):
    """A 64x64 image whose one strip inflates to 128 MiB: stopped at the declared 8 KiB."""
    path = tmp_path / "bomb.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(iter([_zlib_zeros(128)]), shape=(64, 64), dtype=np.uint16, compression="zlib",
                  rowsperstrip=64)
    assert _peak_mib(lambda: tifffile.imread(path)) > 100  # the unbounded decoder inflates it all
    with pytest.raises(ItemError, match="inflates beyond its declared 8192 bytes"):
        read_labels(path)
    assert _peak_mib(lambda: read_labels(path)) < 8


def test_mixed_pages_and_unsupported_compression_are_refused(tmp_path):
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((8, 8), np.uint16))
        tif.write(np.zeros((16, 16), np.uint16))
    with pytest.raises(ItemError, match="pages differ in shape"):
        read_labels(path)
    path = tmp_path / "lzw.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8))
    with tifffile.TiffFile(path) as tif:
        where = tif.pages[0].tags[259].valueoffset  # Compression
    with open(path, "r+b") as fh:
        fh.seek(where)
        fh.write((5).to_bytes(2, "little"))  # LZW, which this reader does not decode
    with pytest.raises(ItemError, match="compression 5 is not accepted"):
        read_labels(path)


# -- tables -------------------------------------------------------------------


def test_table_bounds(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,value\n" + "".join(f"i{k},{k}\n" for k in range(100)))
    assert read_table(path).shape == (100, 1)
    with pytest.raises(ItemError, match="larger than the 200-byte bound"):
        read_table(path, max_bytes=200)
    with pytest.raises(ItemError, match="more than 50 rows"):
        read_table(path, max_rows=50)
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{k}" for k in range(2000)) + "\n" + ",".join("1" * 2000) + "\n")
    with pytest.raises(ItemError, match="has 2000 columns, over the bound of 1000"):
        read_table(wide)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,value\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(ItemError, match="not UTF-8 text .*0xe9.*save the table as UTF-8"):
        read_table(latin)
    extra = tmp_path / "extra.csv"
    extra.write_text("id,value\na,1,2\n")  # pandas would take the first field as an index
    with pytest.raises(ItemError, match="unreadable as CSV"):
        read_table(extra)


# -- classification labels ------------------------------------------------------


@pytest.fixture
def class_dirs(tmp_path: Path) -> tuple[Path, Path]:
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    pd.DataFrame({"id": ["s1", "s2", "s3", "s4"], "sex": [1, 0, 1, 0]}).to_csv(truth / "t.csv", index=False)
    return pred, truth


def test_integral_float_labels_equal_integer_truth(class_dirs):
    pred, truth = class_dirs
    (pred / "t.csv").write_text("id,sex\ns1,1.0\ns2,0.0\ns3,1.0\ns4,1.0\n")
    result = scorers.score_folder(pred, truth, scorer="classification")
    assert result.ok
    assert result.metrics["accuracy"] == 0.75
    assert scorers.classification.class_labels(np.array([1, 0]), np.array([1.0, 0.0]))[1].dtype == np.int64


def test_probabilities_as_labels_are_refused(class_dirs):
    pred, truth = class_dirs
    (pred / "t.csv").write_text("id,sex\ns1,0.91\ns2,0.12\ns3,0.77\ns4,0.40\n")
    result = scorers.score_folder(pred, truth, scorer="classification")
    assert not result.ok and result.metrics["accuracy"] is None
    assert "look like probabilities, but class labels are expected" in result.errors[0]
    (pred / "t.csv").write_text("id,sex\ns1,M\ns2,F\ns3,M\ns4,F\n")
    result = scorers.score_folder(pred, truth, scorer="classification")
    assert "class labels are numbers in the truth but text in the prediction" in result.errors[0]


def test_text_labels_still_compare_as_text(class_dirs):
    pred, truth = class_dirs
    pd.DataFrame({"id": ["s1", "s2"], "sex": ["M", "F"]}).to_csv(truth / "t.csv", index=False)
    (pred / "t.csv").write_text("id,sex\ns1,M\ns2,M\n")
    assert scorers.score_folder(pred, truth, scorer="classification").metrics["accuracy"] == 0.5


# -- one scoring, three parts; the sealed entry point ---------------------------------


def test_score_parts_matches_scoring_each_part(tmp_path):
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    rng = np.random.default_rng(3)
    for i in range(4):
        t = _labels((32, 32))
        tifffile.imwrite(truth / f"{i}.tif", t)
        p = t.copy()
        p[rng.integers(0, 32, 40), rng.integers(0, 32, 40)] = 0
        tifffile.imwrite(pred / f"{i}.tif", p)
    items, public = ["0.tif", "1.tif", "2.tif", "3.tif"], {"1.tif", "3.tif"}
    parts = scorers.score_parts(pred, truth, items=items, public_items=public)
    assert parts.whole == scorers.score_folder(pred, truth, items=items)
    assert parts.public == scorers.score_folder(pred, truth, items=sorted(public)).metrics
    assert parts.private == scorers.score_folder(pred, truth, items=["0.tif", "2.tif"]).metrics
    assert scorers.score_parts(pred, truth, items=items, public_items=set(items)).private == {}


def _sealed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", "-m", "scorers.sealed", *args], capture_output=True,
                          text=True, timeout=120)


def test_sealed_entry_prints_one_json_result(folders):
    from scorers.sealed import FORMAT, request_args

    pred, labels = folders
    tifffile.imwrite(pred / "a.tif", _labels())
    proc = _sealed(*request_args(predictions=str(pred), labels=str(labels), scorer="instance_segmentation",
                                 items=["a.tif"], public_items=["a.tif"]))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["format"] == FORMAT and result["error"] is None and result["ok"]
    assert result["metrics"]["sbd"] == 1.0 and result["public"]["sbd"] == 1.0 and result["private"] == {}
    write_ome_attack(pred / "a.tif", str(labels / "a.tif"))
    result = json.loads(_sealed(*request_args(
        predictions=str(pred), labels=str(labels), scorer="instance_segmentation", items=["a.tif"],
        public_items=[])).stdout)
    assert not result["ok"] and "refers to another file" in result["items"][0]["error"]
    result = json.loads(_sealed(*request_args(
        predictions=str(pred), labels=str(labels), scorer="instance_segmentation", items=["zz.tif"],
        public_items=[])).stdout)
    assert "have no truth file" in result["error"]


def test_sealed_entry_bounds_quoted_messages(class_dirs):
    from scorers.sealed import MESSAGE_CHARS, request_args

    pred, truth = class_dirs
    long_id = "x" * 50_000
    (pred / "t.csv").write_text(f"id,sex\n{long_id},1\n{long_id},0\n")
    result = json.loads(_sealed(*request_args(predictions=str(pred), labels=str(truth), scorer="classification",
                                              items=["t.csv"], public_items=[])).stdout)
    assert "appears more than once" in result["errors"][0] and "xxx..." in result["errors"][0]
    assert len(result["errors"][0]) < 200 and len(result["items"][0]["error"]) < 200
    (pred / "t.csv").write_text("id," + ",".join(f"{long_id}{k}" for k in range(20)) + "\ns1" + ",1" * 20 + "\n")
    result = json.loads(_sealed(*request_args(predictions=str(pred), labels=str(truth), scorer="classification",
                                              items=["t.csv"], public_items=[])).stdout)
    assert "(20 in all)" in result["errors"][0] and len(result["errors"][0]) <= MESSAGE_CHARS


def test_out_of_memory_is_not_a_bad_file(tmp_path, monkeypatch):
    """MemoryError while decoding propagates (the sandbox reports the memory limit), never 'unreadable'."""
    tifffile.imwrite(tmp_path / "a.tif", _labels())

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", exhausted)
    with pytest.raises(MemoryError):
        read_labels(tmp_path / "a.tif")
    monkeypatch.setattr(pd, "read_csv", exhausted)
    (tmp_path / "t.csv").write_text("id,value\na,1\n")
    with pytest.raises(MemoryError):
        read_table(tmp_path / "t.csv")
