"""Checkpoints from the GPU: ``Registry.register`` and ``Checkpointer`` given tensors in GPU
memory chunk and hash them on the device and copy to the host only the chunks the store
lacks; what they store is byte for byte what the CPU path stores.

On the emulator (``cuda_device``'s first two params) CPU tensors stand in for CUDA tensors
and every copy off the "device" is counted, so the whole path runs here; on a GPU the same
tests use CUDA tensors.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.dist.checkpoint import Checkpointer  # noqa: E402
from engine.registry import Registry  # noqa: E402
from engine.store import Store  # noqa: E402

KEY = bytes(range(7, 39))


def on(dev, t):
    """``t`` where the device keeps its tensors: CUDA memory, or the host on the emulator."""
    return t if dev.emulated else t.to(f"cuda:{dev.index}")


def state_dict(dev, n: int = 20, per: int = 50_000, seed: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {f"layer{i:02d}.weight": on(dev, torch.randn(per, generator=g)) for i in range(n)}
    out["layer00.bias"] = on(dev, torch.arange(7, dtype=torch.int64))
    out["embed.half"] = on(dev, torch.randn(1000, generator=g).to(torch.bfloat16))
    return out


def cpu_copy(state: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def register_on_cpu(tmp_path, name: str, state: dict, **store_kw):
    """The same registration through the host path: in another thread, where the emulation
    (per thread) is off, with host copies of the tensors."""
    def run():
        reg = Registry(Store(str(tmp_path / name), **store_kw), index_path=":memory:")
        return reg.register("model", cpu_copy(state))

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def test_registration_on_the_device_stores_what_the_cpu_path_stores(tmp_path, cuda_device):
    state = state_dict(cuda_device)
    reg = Registry(str(tmp_path / "dev"), index_path=":memory:")
    mv = reg.register("model", state)
    want = register_on_cpu(tmp_path, "cpu", state)
    assert (mv.id, mv.format, mv.size) == (want.id, want.format, want.size)
    assert mv.content["manifest"] == want.content["manifest"]
    back = reg.load_state_dict(mv.ref)
    for k, v in cpu_copy(state).items():
        assert torch.equal(back[k], v), k
    assert reg.verify()["ok"]


def test_only_the_chunks_the_store_lacks_leave_the_device(tmp_path, cuda_device):
    state = state_dict(cuda_device, n=40, per=60_000)
    total = sum(v.numel() * v.element_size() for v in state.values())
    reg = Registry(str(tmp_path / "s"), index_path=":memory:")
    before = cuda_device.d2h_bytes
    reg.register("model", state)
    first = cuda_device.d2h_bytes - before
    assert first >= total  # a new store lacks every chunk
    # one step of fine-tuning with 95% of the parameters frozen: 2 of 40 tensors change
    for name in [k for k in sorted(state) if k.endswith(".weight")][:2]:
        state[name].add_(1e-3)
    before = cuda_device.d2h_bytes
    mv = reg.register("model", state)
    second = cuda_device.d2h_bytes - before
    assert second < 0.10 * total, f"copied {second} of {total} bytes"
    assert mv.version == 2
    back = reg.load_state_dict(mv.ref)
    for k, v in cpu_copy(state).items():
        assert torch.equal(back[k], v), k
    # the same state again: nothing but chunk ends and ids crosses
    before = cuda_device.d2h_bytes
    reg.register("model", state)
    assert cuda_device.d2h_bytes - before < 0.01 * total


def test_an_encrypted_store_hashes_with_its_key_on_the_device(tmp_path, cuda_device):
    state = state_dict(cuda_device, n=4)
    reg = Registry(Store(str(tmp_path / "enc"), encrypt=True, key=KEY), index_path=":memory:")
    mv = reg.register("model", state)
    want = register_on_cpu(tmp_path, "enc-cpu", state, encrypt=True, key=KEY)
    assert mv.id == want.id and mv.content["manifest"] == want.content["manifest"]
    assert reg.verify()["ok"]
    back = reg.load_state_dict(mv.ref)
    assert all(torch.equal(back[k], v) for k, v in cpu_copy(state).items())


def test_a_state_dict_with_host_and_device_tensors(tmp_path, cuda_device):
    state = state_dict(cuda_device, n=3)
    state["host.buffer"] = torch.arange(1000, dtype=torch.float32)  # stays on the host
    state["numpy.array"] = np.arange(10, dtype=np.int32)
    reg = Registry(str(tmp_path / "mixed"), index_path=":memory:")
    mv = reg.register("model", state)
    back = reg.load_state_dict(mv.ref)
    assert torch.equal(back["host.buffer"], state["host.buffer"])
    assert back["numpy.array"].tolist() == list(range(10))
    assert reg.verify()["ok"]


class _Loader:
    def __init__(self):
        self.pos = 0

    def state_dict(self):
        return {"pos": self.pos}

    def load_state_dict(self, s):
        self.pos = s["pos"]


def test_checkpointer_saves_a_device_model_and_resumes_it(tmp_path, cuda_device):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 8))
    if not cuda_device.emulated:
        model = model.to(f"cuda:{cuda_device.index}")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = on(cuda_device, torch.randn(32, 64))
    model(x).sum().backward()
    opt.step()
    reg = Registry(str(tmp_path / "ck"), index_path=":memory:")
    ckpt = Checkpointer("ck", registry=reg, every_steps=1)
    before = cuda_device.d2h_bytes
    ref = ckpt.save(0, model, opt, _Loader())
    assert cuda_device.d2h_bytes > before  # the file was built and chunked on the device
    want = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    model2 = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 8))
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-3)
    step = Checkpointer("ck", registry=Registry(reg.store.root, index_path=":memory:")).resume(
        model2, opt2, _Loader(), ref=ref)
    assert step == 1
    for k, v in model2.state_dict().items():
        assert torch.equal(v.cpu(), want[k]), k
    assert reg.verify()["ok"]
