"""The scratch workspace: live buffers never share memory, freed ones are reused, threads have
their own, and the policies give the same results as with fresh memory for every temporary."""

import threading

import pytest
import torch

from robench.augment import POLICIES, make_policy
from robench.augment.workspace import Workspace, thread_workspace

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors


def span(t: torch.Tensor) -> tuple[int, int]:
    """The bytes [start, end) a contiguous tensor occupies."""
    start = t.data_ptr()
    return start, start + t.numel() * t.element_size()


def overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


def test_live_buffers_never_share_memory():
    ws = Workspace()
    with ws.frame() as outer:
        a = outer.empty((4, 3, 8, 8), torch.float32)
        b = outer.empty((4, 3, 8, 8), torch.float32)  # same shape and dtype: still its own memory
        c = outer.empty((4, 3, 8, 8), torch.int16)
        with ws.frame() as inner:
            d = inner.empty((2, 3, 8, 8), torch.float32)
            e = inner.empty((100,), torch.uint8)
        f = outer.empty((4, 3, 8, 8), torch.float64)  # after the inner frame closed
        live = [a, b, c, f]
        assert all(not overlap(x, y) for i, x in enumerate(live) for y in live[i + 1 :])
        assert all(not overlap(x, y) for x in (a, b, c) for y in (d, e))
        a.fill_(1), b.fill_(2), c.fill_(3), f.fill_(4)
        assert (a == 1).all() and (b == 2).all() and (c == 3).all() and (f == 4).all()
    assert a.shape == (4, 3, 8, 8) and a.is_contiguous() and c.dtype == torch.int16


def test_freed_buffers_are_reused_by_the_next_frame():
    """The point of the workspace: the next call gets the same memory, not fresh pages."""
    ws = Workspace()
    with ws.frame() as frame:
        first = [span(frame.empty((64, 3, 32, 32), torch.float32)), span(frame.empty((64, 3, 32, 32), torch.uint8))]
    held = ws.nbytes
    with ws.frame() as frame:
        again = [span(frame.empty((64, 3, 32, 32), torch.float32)), span(frame.empty((64, 3, 32, 32), torch.uint8))]
    assert [s for s, _ in again] == [s for s, _ in first] and ws.nbytes == held
    ws.release()
    assert ws.nbytes == 0


def test_frames_refuse_misuse():
    ws = Workspace()
    with ws.frame() as outer:
        with ws.frame():
            with pytest.raises(RuntimeError, match="innermost"):
                outer.empty((8,), torch.float32)  # would take a slot the inner frame frees
        with pytest.raises(RuntimeError, match="open"):
            ws.release()
    with pytest.raises(RuntimeError, match="innermost"):
        outer.empty((8,), torch.float32)  # closed
    with pytest.raises(RuntimeError, match="innermost"):
        ws.frame().empty((8,), torch.float32)  # never entered
    errors = []

    def other_thread():
        try:
            with ws.frame():
                pass
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=other_thread)
    thread.start(), thread.join()
    assert len(errors) == 1 and "one thread" in str(errors[0])


def test_each_thread_has_its_own_workspace():
    seen = []
    thread = threading.Thread(target=lambda: seen.append(thread_workspace()))
    thread.start(), thread.join()
    assert seen[0] is not thread_workspace() and thread_workspace() is thread_workspace()


def test_other_devices_get_fresh_tensors():
    ws = Workspace()
    with ws.frame() as frame:
        t = frame.empty((2, 3), torch.float32, torch.device("meta"))
    assert t.device.type == "meta" and t.shape == (2, 3) and ws.nbytes == 0


# ----------------------------------------------------------------------------- policies

VARIANTS = [(name, {}) for name in POLICIES if name != "none"] + [
    ("randaugment", {"interpolation": "bilinear", "num_ops": 3}),
    ("trivialaugment", {"interpolation": "bilinear"}),
    ("autoaugment", {"interpolation": "bilinear"}),
    ("augmix", {"all_ops": True, "interpolation": "nearest"}),
    ("augmix", {"depth": 3, "severity": 10}),
    ("simple", {"fill_mode": "constant", "interpolation": "nearest"}),
]


def run(name, params, images, seed=0):
    return make_policy(name, **params)(images, generator=torch.Generator().manual_seed(seed))


def poisoned_take(self, shape, dtype):
    """Fresh memory for every buffer, filled with garbage: nothing can alias or be read unwritten."""
    with torch.inference_mode(False):
        poison = float("nan") if dtype.is_floating_point else 0x5A
        return torch.full(shape, poison, dtype=dtype)


@pytest.mark.parametrize("name,params", VARIANTS)
def test_policies_give_the_same_results_as_with_fresh_memory(name, params, monkeypatch):
    """If two live temporaries shared a buffer, or a result outlived its frame, the reused buffers
    would change the results; fresh poisoned memory for every temporary must give the same."""
    images = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    reused = [run(name, params, images, seed) for seed in range(3)]  # (the later calls reuse buffers)
    monkeypatch.setattr(Workspace, "_take", poisoned_take)
    fresh = [run(name, params, images, seed) for seed in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(reused, fresh))


def test_two_threads_running_one_policy_do_not_share_buffers():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    policy = make_policy("augmix", all_ops=True)
    expected = [policy(images, generator=torch.Generator().manual_seed(seed)) for seed in range(2)]
    results, start = [None, None], threading.Barrier(2)

    def worker(i):
        start.wait()
        for _ in range(3):
            results[i] = policy(images, generator=torch.Generator().manual_seed(i))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    [t.start() for t in threads], [t.join() for t in threads]
    assert all(torch.equal(r, e) for r, e in zip(results, expected))


def test_repeated_calls_hold_no_more_memory():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    policy = make_policy("augmix", all_ops=True)
    for seed in range(3):
        policy(images, generator=torch.Generator().manual_seed(seed))
    held = thread_workspace().nbytes
    for seed in range(3):  # the same calls again: every buffer fits in memory already held
        policy(images, generator=torch.Generator().manual_seed(seed))
    assert 0 < held and thread_workspace().nbytes == held
