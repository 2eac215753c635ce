"""Comparing two trained networks up to float reduction order (data-parallel tests)."""

from __future__ import annotations

import torch


def network_of(content: dict):
    """The network of a model file and a function of it on a fixed random input."""
    torch.manual_seed(0)
    if content["kind"] == "halogen":
        from lodi_core.models.halogen import HALOgen, HalogenConfig

        net = HALOgen(HalogenConfig.from_dict(content["network"])).double()
        x = torch.randn(1, 1, 16, 16, 16, dtype=torch.float64)
        run = lambda: net(x)  # noqa: E731
    else:
        from lodi_core.models.lodi import build_vdm
        from lodi_core.models.unet import DenoiserConfig
        from lodi_core.models.vdm import VDMConfig

        # float32: the time embedding is computed in float32
        net = build_vdm(DenoiserConfig.from_dict(content["network"]), VDMConfig.from_dict(content["vdm"]))
        z, c = torch.randn(2, 1, 8, 8, 8), torch.randn(2, content["network"]["cond_channels"], 8, 8, 8)
        run = lambda: net.predict_noise(z, torch.tensor(0.3), c)  # noqa: E731
    net.load_state_dict(content["model"])
    return net, run


def assert_same_network(a: dict, b: dict, rtol=1e-4):
    """Two model files hold the same network up to float reduction order: outputs within
    rtol of their largest value, and every parameter the output depends on within rtol of
    its tensor's largest entry. Parameters it does not depend on (a bias in front of a
    GroupNorm over single channels, the key bias of attention) have a zero gradient in exact
    arithmetic: RMSprop and Adam turn their float-noise gradients into steps of size lr, so
    they differ between any two runs and are left out, found by their gradient."""
    net_a, run_a = network_of(a)
    net_b, run_b = network_of(b)
    out_a, out_b = run_a(), run_b()
    scale = float(out_b.detach().abs().max())
    assert float((out_a - out_b).detach().abs().max()) <= rtol * scale
    (out_b * torch.randn_like(out_b)).sum().backward()
    grads = {k: float(p.grad.abs().max()) if p.grad is not None else 0.0 for k, p in net_b.named_parameters()}
    ignored = {k for k, g in grads.items() if g <= 1e-9 * max(grads.values())}
    assert len(ignored) < len(grads) / 4, ignored
    for k in grads.keys() - ignored:
        x, y = a["model"][k].double(), b["model"][k].double()
        assert float((x - y).abs().max()) <= rtol * (float(y.abs().max()) or 1.0), k
