"""Files written all or none keep their permissions; files hashed in blocks."""
import hashlib
import json

import pytest

from harness.files import sha256_file, write_atomic, write_json_atomic, write_text_atomic


def test_atomic_writes_keep_the_file_mode(tmp_path):
    path = tmp_path / "b.json"
    write_json_atomic(path, {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    path.chmod(0o640)
    write_json_atomic(path, {"a": 2})
    assert path.stat().st_mode & 0o777 == 0o640 and json.loads(path.read_text()) == {"a": 2}


def current_umask() -> int:
    import os

    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_text_atomic(tmp_path / "page.html", "old")

    def fail(handle):
        handle.write(b"half of the new")
        raise RuntimeError("killed while writing")

    with pytest.raises(RuntimeError):
        write_atomic(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_json_files_are_sorted_and_end_with_a_newline(tmp_path):
    path = write_json_atomic(tmp_path / "sub" / "r.json", {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n "a": [\n  1,\n  2\n ],\n "b": 1\n}\n'


def test_sha256_file_reads_in_blocks(tmp_path):
    data = bytes(range(256)) * 5000
    (tmp_path / "blob").write_bytes(data)
    assert sha256_file(tmp_path / "blob", chunk=4096) == hashlib.sha256(data).hexdigest()
