import pytest

from mcu_dc.fileio import atomic_path, write_bytes_atomic, write_text_atomic


def test_write_replaces_whole_file(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    write_text_atomic(p, "old\n")
    write_text_atomic(p, "new\n")
    assert p.read_text() == "new\n"
    write_bytes_atomic(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert sorted(x.name for x in p.parent.iterdir()) == ["f.txt"]


def test_failure_leaves_old_content_and_no_temp(tmp_path):
    p = tmp_path / "model.mcudc"
    p.write_bytes(b"complete")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert p.read_bytes() == b"complete"
    assert [x.name for x in tmp_path.iterdir()] == ["model.mcudc"]
