"""The Lagrangian Deep Learning baseline (Dai & Seljak 2021; JERALD, Eqs. 1-10 of its paper):
the DM-only particles are moved by displacement layers x -> x + alpha grad(G * (1+delta)^gamma),
G(k) = exp(-(k_l/k)^2) exp(-(k/k_s)^2) k^nu, then painted (CIC) and passed through
F = ReLU(b_1 (1+delta)^mu - b_0), smoothed like the target. A handful of parameters per layer,
fitted by :func:`lodi_core.training.baselines.train_ldl`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import ConfigSection
from ..io import load_checkpoint, load_weights
from ..physics.fields import Stencil, fourier_wavenumbers, gaussian_smooth


@dataclass(frozen=True)
class LDLConfig(ConfigSection):
    """Config ``baselines.ldl``."""

    SECTION = "baselines.ldl"

    layers: int
    steps: int
    lr: float
    smoothing: bool
    loss_real: float
    loss_power: float
    fourier_n: float
    checkpoint_every: int
    particle_stride: int = 1  # the Lagrangian sub-lattice of every s-th particle per axis (read_particles)


def _fd_gradient_kernels(n: int, box_size: float, dtype=torch.float32) -> list[torch.Tensor]:
    """Fourier kernels of the 4-point finite-difference gradient (JERALD, Sec. II A):
    i (8 sin(k dx) - sin(2 k dx)) / (6 dx) per axis [h/Mpc]."""
    dx = box_size / n
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    return [
        (1j * (8 * torch.sin(k * dx) - torch.sin(2 * k * dx)) / (6 * dx)).to(complex_dtype)
        for k in fourier_wavenumbers(n, box_size)
    ]


class DisplacementLayer(nn.Module):
    """JERALD Eqs. 1-2 and 6: x -> x + alpha grad(G * f), f = (1+delta)^gamma, with
    G(k) = exp(-(k_l/k)^2) exp(-(k/k_s)^2) k^nu (k_l a high-pass that leaves the large
    scales alone, k_s a softening). alpha = a * alpha_unit: ``alpha_unit`` (a buffer, set
    once by :meth:`LDL.calibrate`) makes a = 1 an rms displacement of one cell, so every
    learned number is of order one. a = 0 is the identity."""

    def __init__(self, k_l: float, k_s: float, nu: float = -2.0, gamma: float = 1.0, a: float = 0.0):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(float(a)))
        self.gamma = nn.Parameter(torch.tensor(float(gamma)))
        self.log_k_l = nn.Parameter(torch.tensor(math.log(k_l)))
        self.log_k_s = nn.Parameter(torch.tensor(math.log(k_s)))
        self.nu = nn.Parameter(torch.tensor(float(nu)))
        self.register_buffer("alpha_unit", torch.tensor(1.0))

    def green(self, kmag: torch.Tensor) -> torch.Tensor:
        """G(k) on the rfft modes (0 at k = 0)."""
        k = torch.where(kmag > 0, kmag, torch.ones_like(kmag))
        g = torch.exp(-((self.log_k_l.exp() / k) ** 2) - (k / self.log_k_s.exp()) ** 2 + self.nu * torch.log(k))
        return torch.where(kmag > 0, g, torch.zeros_like(g))

    def potential_gradient(self, density: torch.Tensor, mesh: Mesh) -> torch.Tensor:
        """grad(G * (1+delta)^gamma) on the grid, (3, n, n, n) [per Mpc/h]."""
        f = density.clamp(min=1e-6) ** self.gamma
        phi_k = torch.fft.rfftn(f) * self.green(mesh.kmag)
        return torch.stack([torch.fft.irfftn(phi_k * d, s=f.shape) for d in mesh.grad_kernels])

    def forward(self, x: torch.Tensor, mesh: Mesh, stencil: Stencil | None = None) -> torch.Tensor:
        """x (N, 3) in Mpc/h -> displaced x (``stencil``: the CIC stencil at x, if known)."""
        stencil = stencil or Stencil.at(x * (mesh.n / mesh.box_size), mesh.n)
        grad = self.potential_gradient(stencil.density(), mesh)
        return x + (self.a * self.alpha_unit) * stencil.read(grad)


class Activation(nn.Module):
    """JERALD Eq. 8: F = ReLU(b_1 (1+delta)^mu - b_0) in units of the mean target T_b."""

    def __init__(self, mu: float = 1.0, b1: float = 1.0, b0: float = 0.0):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor(float(mu)))
        self.log_b1 = nn.Parameter(torch.tensor(math.log(b1)))
        self.b0 = nn.Parameter(torch.tensor(float(b0)))

    def forward(self, density: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.log_b1.exp() * density.clamp(min=1e-6) ** self.mu - self.b0)


@dataclass
class Mesh:
    """The Fourier mesh of a periodic box: |k| of the rfft modes and the gradient kernels."""

    n: int
    box_size: float
    kmag: torch.Tensor
    grad_kernels: list

    @classmethod
    def of(cls, n: int, box_size: float, device=None, dtype=torch.float32) -> Mesh:
        kx, ky, kz = fourier_wavenumbers(n, box_size)
        kmag = torch.sqrt(kx**2 + ky**2 + kz**2).to(device=device, dtype=dtype)
        return cls(n, float(box_size), kmag, [k.to(device) for k in _fd_gradient_kernels(n, box_size, dtype)])


class LDL(nn.Module):
    """Lagrangian Deep Learning for T_b: displacement layers, CIC paint, activation, the
    target's Gaussian smoothing, times the mean T_b of the training targets (mK)."""

    def __init__(self, layers: int, box_size: float, n_grid: int, smoothing_radius: float, tb_mean: float):
        super().__init__()
        k_nyq = math.pi * n_grid / box_size
        # layer l starts softened at k_Nyquist / 2^(L - l): distinct starting scales break the symmetry
        self.layers = nn.ModuleList(
            DisplacementLayer(k_l=2 * math.pi / box_size, k_s=k_nyq / 2 ** (layers - l)) for l in range(layers)
        )
        self.activation = Activation()
        self.register_buffer("tb_mean", torch.tensor(float(tb_mean)))
        self.box_size, self.n_grid, self.smoothing_radius = float(box_size), int(n_grid), float(smoothing_radius)
        self._meshes: dict = {}

    def mesh(self, n: int, box_size: float, device, dtype=torch.float32) -> Mesh:
        """The Fourier mesh of an n^3 box, cached."""
        key = (n, float(box_size), str(device), dtype)
        if key not in self._meshes:
            self._meshes[key] = Mesh.of(n, box_size, device, dtype)
        return self._meshes[key]

    def displace(self, x: torch.Tensor, mesh: Mesh, stencil: Stencil | None = None) -> torch.Tensor:
        """Positions after the displacement layers (Mpc/h, not wrapped)."""
        for layer in self.layers:
            x = layer(x, mesh, stencil)
            stencil = None
        return x

    def forward(
        self,
        positions: torch.Tensor,
        n_grid: int | None = None,
        box_size: float | None = None,
        stencil: Stencil | None = None,
    ) -> torch.Tensor:
        """T_b [mK] on (n, n, n) from DM particle positions (N, 3) in Mpc/h; by default on
        the training box, or on any box with the training cell size. ``stencil``: the CIC
        stencil of the (fixed) input positions, cached by the training loop."""
        n, box = n_grid or self.n_grid, box_size or self.box_size
        mesh = self.mesh(n, box, positions.device, positions.dtype)
        x = self.displace(positions, mesh, stencil)
        final = stencil if stencil is not None and not self.layers else Stencil.at(x * (n / box), n)
        tb = self.activation(final.density()) * self.tb_mean
        return gaussian_smooth(tb, box, self.smoothing_radius) if self.smoothing_radius > 0 else tb

    @torch.no_grad()
    def calibrate(self, positions: torch.Tensor) -> None:
        """alpha_unit of each layer: one cell over the rms of its initial grad(G * f) at the
        particles (all layers at the undisplaced positions)."""
        mesh = self.mesh(self.n_grid, self.box_size, positions.device, positions.dtype)
        stencil = Stencil.at(positions * (mesh.n / mesh.box_size), mesh.n)
        density = stencil.density()
        for layer in self.layers:
            g = stencil.read(layer.potential_gradient(density, mesh))
            rms = float(g.pow(2).sum(1).mean().sqrt())
            layer.alpha_unit.fill_(self.box_size / self.n_grid / rms if rms > 0 else 1.0)

    @torch.no_grad()
    def describe(self) -> dict:
        """The learned parameters in physical units."""
        out = {"layers": [], "activation": {}}
        for layer in self.layers:
            out["layers"].append(
                {
                    "alpha": float(layer.a * layer.alpha_unit),
                    "a": float(layer.a),
                    "gamma": float(layer.gamma),
                    "k_l": float(layer.log_k_l.exp()),
                    "k_s": float(layer.log_k_s.exp()),
                    "nu": float(layer.nu),
                }
            )
        a = self.activation
        out["activation"] = {
            "mu": float(a.mu),
            "b1": float(a.log_b1.exp()),
            "b0": float(a.b0),
            "tb_mean_mK": float(self.tb_mean),
        }
        return out


# ----------------------------------------------------------------------------- LDL loss
class PowerBins:
    """Differentiable P(k) binning: rfft modes in shells of width k_F (with the
    multiplicity of the half-space), k_F <= |k| <= k_Nyquist."""

    def __init__(self, n: int, box_size: float, device=None):
        kx, ky, kz = fourier_wavenumbers(n, box_size)
        kf = 2 * math.pi / box_size
        kmag = torch.sqrt(kx**2 + ky**2 + kz**2)
        shell = torch.floor(kmag / kf + 1e-9).long()
        iz = torch.round(kz / kf).long().expand_as(shell)
        weight = torch.where((iz == 0) | (iz == n // 2), 1.0, 2.0).double()
        keep = (shell >= 1) & (shell <= n // 2)
        self.shell = torch.where(keep, shell, torch.zeros_like(shell)).reshape(-1).to(device)
        self.weight = torch.where(keep, weight, torch.zeros_like(weight)).float().reshape(-1).to(device)
        self.n_bins = n // 2 + 1
        counts = torch.zeros(self.n_bins, device=device).index_add(0, self.shell, self.weight)
        self.counts = counts.clamp(min=1)
        self.k = torch.arange(self.n_bins, dtype=torch.float64) * kf

    def __call__(self, field: torch.Tensor) -> torch.Tensor:
        """Binned |F_k|^2 of T_b / <T_b> per shell 1..n/2 (arbitrary normalisation)."""
        fk = torch.fft.rfftn(field / field.mean())
        p = (fk.real**2 + fk.imag**2).reshape(-1) * self.weight
        return (torch.zeros(self.n_bins, dtype=p.dtype, device=p.device).index_add(0, self.shell, p) / self.counts)[1:]


def fourier_weight(n: int, box_size: float, power: float, device=None) -> torch.Tensor:
    """O_s(k) = 1 + k^-n (k in h/Mpc; Dai & Seljak's loss filter, weighting large scales up
    so the small ones do not decide the loss alone); k = 0 gets the value at k_F."""
    kx, ky, kz = fourier_wavenumbers(n, box_size)
    kmag = torch.sqrt(kx**2 + ky**2 + kz**2)
    kmag = torch.where(kmag > 0, kmag, torch.full_like(kmag, 2 * math.pi / box_size))
    return (1.0 + kmag ** (-power)).float().to(device)


def ldl_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    o_s: torch.Tensor,
    bins: PowerBins,
    target_power: torch.Tensor,
    cfg: LDLConfig,
) -> tuple[torch.Tensor, dict]:
    """loss_real * <|O_s (F - F_t)|> / <F_t> + loss_power * <(ln P_F(k) - ln P_t(k))^2>
    over the shells (P of T_b / <T_b>): JERALD's filtered L1 in real space plus the power
    spectrum the metrics judge."""
    diff = torch.fft.irfftn(torch.fft.rfftn(pred - target) * o_s, s=pred.shape)
    real = diff.abs().mean() / target.mean()
    power = (torch.log(bins(pred) + 1e-30) - torch.log(target_power + 1e-30)).pow(2).mean()
    total = cfg.loss_real * real + cfg.loss_power * power
    return total, {"real": float(real.detach()), "power": float(power.detach())}


def load_ldl(path) -> tuple[LDL, dict]:
    """The trained LDL model (eval mode) and the model file's content."""
    state = load_checkpoint(path, kind="ldl")
    g = state["grid"]
    model = LDL(int(state["config"]["layers"]), g["box_size"], g["n_grid"], g["smoothing_radius"], 1.0)
    return load_weights(model, path, state, {"LDL layers": state["config"]["layers"]}), state


@torch.no_grad()
def apply_ldl(model: LDL, positions: torch.Tensor, box_size: float, n_grid: int) -> torch.Tensor:
    """T_b [mK] of a box painted by the trained model; the box must have the training cell."""
    cell, train_cell = box_size / n_grid, model.box_size / model.n_grid
    if not math.isclose(cell, train_cell, rel_tol=1e-6):
        raise ValueError(f"cell of {cell:g} Mpc/h differs from the LDL training cell {train_cell:g} Mpc/h")
    return model(positions, n_grid, box_size)
