"""Huge pages for session memory: region bookkeeping is pure and tested everywhere; the collapse itself is tested
where the kernel offers it (Linux 6.1+, THP not `never`) and skipped elsewhere."""

import mmap

import numpy as np
import pytest

from onnxpipe import huge_pages
from onnxpipe.huge_pages import HUGE_PAGE, HugePageWatch, new_huge_ranges, parse_anonymous_regions
from onnxpipe.session import OnnxSession

MAPS = """\
55d4c0a00000-55d4c0c00000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000800000 rw-p 00000000 00:00 0
7f0000800000-7f0000a00000 r--p 00000000 08:01 1234                       /usr/lib/libc.so.6
7f0000a00000-7f0000c00000 rw-p 00000000 08:01 1234                       /usr/lib/libc.so.6
7f0000c00000-7f0000e00000 rw-s 00000000 00:01 99                         /dev/zero (deleted)
7f0000e00000-7f0001000000 r--p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
"""


def test_only_private_writable_anonymous_regions_are_listed():
    assert parse_anonymous_regions(MAPS) == [(0x55D4C0A00000, 0x55D4C0C00000), (0x7F0000000000, 0x7F0000800000)]


def test_new_ranges_leave_out_old_memory_and_partial_huge_pages():
    base = 100 * HUGE_PAGE
    before = [(base, base + 2 * HUGE_PAGE)]
    # the old region grew by three huge pages and a half; a new region starts off a huge-page boundary
    after = [(base, base + 5 * HUGE_PAGE + HUGE_PAGE // 2), (base + 10 * HUGE_PAGE + 4096, base + 13 * HUGE_PAGE)]
    assert new_huge_ranges(before, after) == [
        (base + 2 * HUGE_PAGE, base + 5 * HUGE_PAGE),
        (base + 11 * HUGE_PAGE, base + 13 * HUGE_PAGE),
    ]


def test_new_ranges_skip_regions_smaller_than_a_huge_page():
    assert new_huge_ranges([], [(HUGE_PAGE + 4096, 2 * HUGE_PAGE + 8192)]) == []
    assert new_huge_ranges([(0, 10 * HUGE_PAGE)], [(0, 10 * HUGE_PAGE)]) == []


def test_environment_variable_turns_it_off(monkeypatch):
    monkeypatch.setenv("ONNXPIPE_HUGE_PAGES", "0")
    watch = HugePageWatch()
    assert not watch.active and watch.before == []
    watch.collapse_new()
    assert watch.thread is None


def _collapse_works() -> bool:
    """Whether this kernel collapses a fresh, fully written anonymous mapping into huge pages."""
    if not huge_pages.enabled():
        return False
    region = mmap.mmap(-1, 4 * HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    view = np.frombuffer(region, dtype=np.uint8)
    view[:] = 1
    start = view.ctypes.data
    ranges = new_huge_ranges([], [(start, start + view.nbytes)])
    works = huge_pages.collapse(ranges) > 0 and bool(view.min() == 1)  # the contents survive the copy
    del view
    region.close()
    return works


def _big_weight_model(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # 48 MiB of weights: above glibc's largest mmap threshold (32 MiB), so the session maps them freshly and
    # cannot reuse a hole that earlier tests left in the heap
    weight = numpy_helper.from_array(np.full((3072, 4096), 0.5, dtype=np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3072])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4096])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_session_collapses_its_memory_after_the_first_run_and_results_are_unchanged(tmp_path):
    if not _collapse_works():
        pytest.skip("this kernel does not collapse memory into huge pages (needs Linux 6.1+ and THP not 'never')")
    session = OnnxSession(_big_weight_model(tmp_path / "m.onnx"))
    watch = session.huge_pages
    assert watch is not None and watch.active and watch.thread is None  # nothing before the first result
    x = np.ones((2, 3072), dtype=np.float32)
    first = session.run({"x": x})["y"]
    assert session.huge_pages is None and watch.thread is not None
    watch.thread.join(timeout=60)
    assert watch.collapsed_bytes >= 16 * HUGE_PAGE  # most of the 48 MiB weight buffer
    again = session.run({"x": x})["y"]
    np.testing.assert_array_equal(first, again)
    assert float(again[0, 0]) == 1536.0


def test_collapse_starts_once_when_threads_race(monkeypatch):
    import threading

    started = []
    monkeypatch.setattr(huge_pages, "enabled", lambda: True)
    monkeypatch.setattr(huge_pages, "anonymous_regions", lambda: [(0, 4 * HUGE_PAGE)] if started else [])
    monkeypatch.setattr(huge_pages, "collapse", lambda ranges: started.append(ranges) or 0)
    watch = HugePageWatch()  # before: no regions; after: one new region of 4 huge pages
    started.append("constructed")
    threads = [threading.Thread(target=watch.collapse_new) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    watch.thread.join()
    assert started == ["constructed", [(0, 4 * HUGE_PAGE)]]
