"""Reading submission lines from files, stdin, handles and dicts."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import sys

import pytest

from dispatcher.errors import InputError
from dispatcher.intake.reader import describe, iter_lines


def test_file_lines_numbered_from_one_skipping_blanks(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \n{"b": 2}\n{"c": 3}')
    lines = list(iter_lines(path))
    assert [n for n, _ in lines] == [1, 4, 5]
    assert lines[0][1].strip() == b'{"a": 1}'
    assert lines[2][1] == b'{"c": 3}'


def test_str_path(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"x": 1}\n')
    assert [n for n, _ in iter_lines(str(path))] == [1]


def test_crlf_blank_lines_skipped(tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\r\n{"b": 2}\r\n')
    assert [n for n, _ in iter_lines(path)] == [1, 3]


def test_missing_file(tmp_path):
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(InputError) as info:
        list(iter_lines(missing))
    assert str(missing) in str(info.value)


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(InputError):
        list(iter_lines(tmp_path))


def test_stdin_dash(monkeypatch):
    fake = io.TextIOWrapper(io.BytesIO(b'\n{"one": 1}\n{"two": 2}\n'))
    monkeypatch.setattr(sys, "stdin", fake)
    lines = list(iter_lines("-"))
    assert [n for n, _ in lines] == [2, 3]
    assert lines[1][1] == b'{"two": 2}\n'


def test_open_handle():
    handle = io.StringIO('{"a": 1}\n\n{"b": 2}\n')
    assert [n for n, _ in iter_lines(handle)] == [1, 3]


def test_iterable_of_dicts():
    items = [{"a": 1}, {"b": 2}]
    assert list(iter_lines(items)) == [(1, {"a": 1}), (2, {"b": 2})]


def test_lazy_generator_is_consumed_lazily():
    def gen():
        yield {"a": 1}
        raise RuntimeError("should not be reached by the first next()")

    iterator = iter_lines(gen())
    assert next(iterator) == (1, {"a": 1})


def test_describe(tmp_path):
    assert describe("-") == "<stdin>"
    assert describe(tmp_path / "f.jsonl") == str(tmp_path / "f.jsonl")
    assert describe([{"a": 1}]) is None
    assert describe(io.StringIO("")) is None


def test_utf8_byte_order_mark_is_dropped_from_the_first_line_only(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"b": "\xef\xbb\xbf"}\n')
    assert list(iter_lines(path)) == [(1, b'{"a": 1}\n'), (2, b'{"b": "\xef\xbb\xbf"}\n')]
    text = io.StringIO('\ufeff{"a": 1}\n')
    assert list(iter_lines(text)) == [(1, '{"a": 1}\n')]


# -- compressed input: recognised by its first bytes, read as a stream ----------------------

LINES = b'{"a": 1}\n\n{"b": 2}\n'


@pytest.mark.parametrize("name", ["in.jsonl.gz", "in.jsonl"])
def test_gzip_file_is_read_whatever_its_name(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(gzip.compress(LINES))
    assert list(iter_lines(path)) == [(1, b'{"a": 1}\n'), (3, b'{"b": 2}\n')]


@pytest.mark.parametrize("compress", [bz2.compress, lzma.compress], ids=["bzip2", "xz"])
def test_bzip2_and_xz_files_are_read(tmp_path, compress):
    path = tmp_path / "in.jsonl.z"
    path.write_bytes(compress(LINES))
    assert [n for n, _ in iter_lines(path)] == [1, 3]


def test_gzip_on_stdin_from_a_pipe(monkeypatch):
    """`gunzip`-less `llm-dispatch submit - < prompts.jsonl.gz`: stdin is a pipe, not seekable."""
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "wb") as writer:
        writer.write(gzip.compress(LINES))
    stdin = io.TextIOWrapper(os.fdopen(read_fd, "rb"))
    monkeypatch.setattr(sys, "stdin", stdin)
    try:
        assert [n for n, _ in iter_lines("-")] == [1, 3]
    finally:
        stdin.close()


def test_gzip_handle_from_the_python_api():
    assert [n for n, _ in iter_lines(io.BytesIO(gzip.compress(LINES)))] == [1, 3]


def test_gzip_is_streamed_not_read_whole(tmp_path):
    path = tmp_path / "big.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, os.urandom(32).hex().encode())
                                            for i in range(50_000))))
    with path.open("rb") as handle:
        lines = iter_lines(handle)
        assert next(lines)[0] == 1
        assert handle.tell() < path.stat().st_size / 4


def test_truncated_gzip_names_the_last_good_line(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:-20])
    with pytest.raises(InputError) as info:
        list(iter_lines(path))
    assert str(info.value).startswith(f"{path}: the gzip data is damaged or cut short after line ")


@pytest.mark.parametrize("head, words", [
    (b"PK\x03\x04rest-of-zip", "a zip archive; unzip it"),
    (b"\x28\xb5\x2f\xfdrest-of-zstd", "zstd-compressed; decompress it first"),
])
def test_archives_we_do_not_read_say_what_to_do(tmp_path, head, words):
    path = tmp_path / "in.bin"
    path.write_bytes(head)
    with pytest.raises(InputError) as info:
        list(iter_lines(path))
    assert str(info.value).startswith(f"{path} is {words}")
