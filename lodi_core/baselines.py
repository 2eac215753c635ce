"""Cheap baselines beside LODI, on the same held-out simulations and metrics.

- **Halo model**: T_b painted deterministically on the halo channels. Each halo of channel c
  holds M_HI = r_c M_h; since CIC and the Gaussian smoothing are linear, painting the
  catalogue and smoothing equals T_b = sum_c f_c rho_h^(c) on the smoothed channel grids,
  f_c = K h r_c with K the Eq. 12 factor. The f_c >= 0 are a least-squares fit on the
  training simulations' grids; they are applied to HALOgen's halos (``halo_model``, the
  pipeline's comparison) and to the true halos (``halo_model_true``).
- **Lagrangian Deep Learning** (Dai & Seljak 2021; JERALD, Eqs. 1-10 of its paper): the
  DM-only particles are moved by displacement layers x -> x + alpha grad(G * (1+delta)^gamma),
  G(k) = exp(-(k_l/k)^2) exp(-(k/k_s)^2) k^nu, then painted (CIC) and passed through
  F = ReLU(b_1 (1+delta)^mu - b_0), smoothed like the target. A handful of parameters per
  layer, trained by :func:`train_ldl` with the shared loop of :mod:`lodi_core.training`.

Baseline volumes are written like generated volumes (``tb`` in mK, the attributes of
:func:`generate.volume_attrs`) with ``box = 0``: they are painted on the whole volume at once,
so they have no boxes and no seams.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls
from torch import nn

from . import camels
from .configs import ConfigSection
from .cosmology import Cosmology
from .fields import Stencil, brightness_temperature, cell_volume, cic, fourier_wavenumbers, gaussian_smooth
from .generate import GenerationConfig, volume_attrs
from .halos import channel_index
from .io import InputError, atomic_path, code_version, load_checkpoint, read_grids, write_grids
from .training import LoopSpec, train

log = logging.getLogger(__name__)

#: the baseline methods, as they appear in the metrics table and the figures
METHODS = ("halo_model", "halo_model_true", "ldl")


# ----------------------------------------------------------------------------- attributes
def baseline_attrs(grid_attrs: dict, method: str, seed: int, simulation: str, model_path, source: dict) -> dict:
    """The attributes of :func:`generate.volume_attrs` for a volume painted in one piece:
    ``box = 0`` (no boxes, hence no seams), no overlap; ``baseline_model`` and ``source``
    (the files it was painted from) for provenance."""
    attrs = volume_attrs(grid_attrs, method, seed, simulation, "none", source.get("halos", "none"),
                         GenerationConfig(overlap=0, periodic=False, resample=0), box=0)
    attrs.update({"baseline_model": str(model_path), "deterministic": True, "source": {k: str(v) for k, v in source.items()}})
    return attrs


def write_baseline(path, tb, attrs: dict) -> None:
    """A baseline T_b volume (mK), checked finite and non-negative."""
    tb = torch.as_tensor(tb).float()
    if not torch.isfinite(tb).all():
        raise FloatingPointError(f"{path}: the {attrs.get('method')} volume has non-finite values; not written")
    write_grids(path, {"tb": tb.clamp(min=0)}, attrs)


# ----------------------------------------------------------------------------- halo model
def tb_per_hi_density(cosmology: Cosmology, redshift: float) -> float:
    """K of Eq. 12, T_b = K rho_HI: mK per (Msun/h) (Mpc/h)^-3."""
    return float(brightness_temperature(torch.ones((), dtype=torch.float64), cosmology, redshift))


def hi_ratio_to_coefficient(ratio, cosmology: Cosmology, redshift: float) -> np.ndarray:
    """M_HI / M_h per channel -> f_c in mK per Msun (Mpc/h)^-3 (halo channels are in Msun
    per (Mpc/h)^3, rho_HI in (Msun/h) per (Mpc/h)^3, hence the factor h)."""
    return np.asarray(ratio, dtype=np.float64) * cosmology.h * tb_per_hi_density(cosmology, redshift)


def coefficient_to_hi_ratio(coefficients, cosmology: Cosmology, redshift: float) -> np.ndarray:
    """Inverse of :func:`hi_ratio_to_coefficient`."""
    return np.asarray(coefficients, dtype=np.float64) / (cosmology.h * tb_per_hi_density(cosmology, redshift))


def paint_halo_catalogue(positions, mass_msun, hi_ratio, box_size: float, n_grid: int, mass_edges, cosmology: Cosmology, redshift: float = 0.0, device=None) -> torch.Tensor:
    """The halo model on a catalogue: each halo of channel c (Eq. 1 edges, Msun) holds
    M_HI = r_c M_h, CIC-painted and turned into T_b (Eq. 12) [mK], before smoothing.
    Halos below the first edge hold no HI. ``positions`` in Mpc/h, ``mass_msun`` in Msun."""
    mass = np.asarray(mass_msun, dtype=np.float64).reshape(-1)
    channel = channel_index(mass, mass_edges)
    ratio = np.append(np.asarray(hi_ratio, dtype=np.float64), 0.0)  # index -1: below the first edge
    m_hi = ratio[channel] * mass * cosmology.h  # Msun/h
    rho_hi = cic(np.asarray(positions, dtype=np.float64).reshape(-1, 3), box_size, n_grid, weights=m_hi, dtype=torch.float64, device=device)
    return brightness_temperature(rho_hi / cell_volume(box_size, n_grid), cosmology, redshift)


def paint_halo_channels(halos, coefficients) -> torch.Tensor:
    """T_b = sum_c f_c rho_h^(c) [mK] on halo channel grids (C, n, n, n) in Msun (Mpc/h)^-3;
    equal to :func:`paint_halo_catalogue` followed by the channels' smoothing."""
    h = torch.as_tensor(np.asarray(halos), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(coefficients, dtype=np.float64))
    if h.ndim != 4 or h.shape[0] != f.numel():
        raise ValueError(f"halos of shape {tuple(h.shape)} do not match {f.numel()} coefficients")
    return torch.einsum("c,cxyz->xyz", f, h)


def fit_coefficients(halos_list, tb_list) -> tuple[np.ndarray, float]:
    """Non-negative least squares for f_c in tb ~ sum_c f_c halos_c over every voxel of
    every training grid; returns f (mK per Msun (Mpc/h)^-3) and the fraction of the T_b
    variance explained. Solved on the QR factor of the design matrix (C x C)."""
    a = np.concatenate([np.asarray(h, dtype=np.float64).reshape(np.shape(h)[0], -1).T for h in halos_list])
    b = np.concatenate([np.asarray(t, dtype=np.float64).ravel() for t in tb_list])
    scale = np.where(a.std(axis=0) > 0, a.std(axis=0), 1.0)  # column scaling: channels differ by decades
    q, r = np.linalg.qr(a / scale)
    x, _ = nnls(r, q.T @ b)
    f = x / scale
    resid = b - a @ f
    explained = 1.0 - float(resid.var() / b.var()) if b.var() > 0 else float("nan")
    return f, explained


@dataclass(frozen=True)
class HaloModel:
    """The fitted halo model: f_c [mK per Msun (Mpc/h)^-3] and r_c = M_HI / M_h per channel."""

    coefficients: tuple
    hi_ratio: tuple
    mass_edges: tuple
    explained_variance: float
    training: tuple
    grid: dict

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(kind="halo_model", units={"coefficients": "mK / (Msun (Mpc/h)^-3)", "hi_ratio": "M_HI / M_h", "mass_edges": "Msun"},
                 code_version=code_version())
        return d

    @classmethod
    def load(cls, path) -> "HaloModel":
        p = Path(path)
        if not p.exists():
            raise InputError(p, "missing halo-model file: the file does not exist")
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as err:
            raise InputError(p, f"not a JSON halo-model file ({err})") from err
        if d.get("kind") != "halo_model":
            raise InputError(p, f"file is of kind '{d.get('kind')}', expected 'halo_model'")
        return cls(**{k: (tuple(d[k]) if isinstance(d[k], list) else d[k]) for k in ("coefficients", "hi_ratio", "mass_edges", "explained_variance", "training", "grid")})


def _grid_cosmology(attrs: dict) -> Cosmology:
    c = attrs.get("cosmology")
    return Cosmology(**c) if isinstance(c, dict) else Cosmology()


def fit_halo_model(grid_paths, expect: dict | None = None) -> HaloModel:
    """Fit f_c on the training simulations' (smoothed) halo channels and T_b."""
    halos, tbs, attrs = [], [], {}
    for p in grid_paths:
        data, attrs = read_grids(p, ("halos", "tb"), expect)
        halos.append(data["halos"])
        tbs.append(data["tb"])
    f, explained = fit_coefficients(halos, tbs)
    cosmology, z = _grid_cosmology(attrs), float(attrs.get("redshift", 0.0))
    ratio = coefficient_to_hi_ratio(f, cosmology, z)
    edges = tuple(float(e) for e in attrs.get("halo_mass_edges", [])) or tuple([float("nan")] * len(f))
    log.info("halo model: M_HI/M_h per channel %s (f_c %s mK per Msun (Mpc/h)^-3), T_b variance explained %.3f",
             np.array2string(ratio, precision=4), np.array2string(f, precision=4), explained)
    grid = {k: attrs.get(k) for k in ("box_size", "n_grid", "smoothing_radius", "redshift", "cosmology")}
    return HaloModel(tuple(map(float, f)), tuple(map(float, ratio)), edges, explained, tuple(str(p) for p in grid_paths), grid)


def run_fit_halo_model(grid_paths, out_path, expect: dict | None = None) -> None:
    """One Snakemake job: fit the halo model and write it as JSON (units included)."""
    model = fit_halo_model(grid_paths, expect)
    with atomic_path(out_path) as tmp:
        Path(tmp).write_text(json.dumps(model.to_json(), indent=2) + "\n")


def run_halo_model_volume(model_path, halos_path, out_path, method: str, seed: int, simulation: str) -> None:
    """One Snakemake job: paint T_b with the fitted halo model on a halo-channel file
    (HALOgen's prediction or the simulation's grid) and write it as a generated volume."""
    model = HaloModel.load(model_path)
    data, attrs = read_grids(halos_path, ("halos",))
    halos = data["halos"]
    if halos.shape[0] != len(model.coefficients):
        raise InputError(halos_path, f"{halos.shape[0]} halo channels, the halo model {model_path} has {len(model.coefficients)}")
    edges = attrs.get("halo_mass_edges")
    if edges is not None and not np.allclose(edges, model.mass_edges, rtol=1e-6):
        raise InputError(halos_path, f"halo mass edges {edges} differ from the halo model's {list(model.mass_edges)}")
    tb = paint_halo_channels(halos, model.coefficients)
    write_baseline(out_path, tb, baseline_attrs(attrs, method, seed, simulation, model_path, {"halos": halos_path}))


# ----------------------------------------------------------------------------- LDL model
@dataclass(frozen=True)
class LDLConfig(ConfigSection):
    """Config ``baselines.ldl``."""

    layers: int = 2
    steps: int = 100
    lr: float = 0.02
    smoothing: bool = True
    loss_real: float = 1.0
    loss_power: float = 1.0
    fourier_n: float = 1.0
    checkpoint_every: int = 25


def _fd_gradient_kernels(n: int, box_size: float, dtype=torch.float32) -> list[torch.Tensor]:
    """Fourier kernels of the 4-point finite-difference gradient (JERALD, Sec. II A):
    i (8 sin(k dx) - sin(2 k dx)) / (6 dx) per axis [h/Mpc]."""
    dx = box_size / n
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    return [(1j * (8 * torch.sin(k * dx) - torch.sin(2 * k * dx)) / (6 * dx)).to(complex_dtype) for k in fourier_wavenumbers(n, box_size)]


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

    def potential_gradient(self, density: torch.Tensor, mesh: "Mesh") -> torch.Tensor:
        """grad(G * (1+delta)^gamma) on the grid, (3, n, n, n) [per Mpc/h]."""
        f = density.clamp(min=1e-6) ** self.gamma
        phi_k = torch.fft.rfftn(f) * self.green(mesh.kmag)
        return torch.stack([torch.fft.irfftn(phi_k * d, s=f.shape) for d in mesh.grad_kernels])

    def forward(self, x: torch.Tensor, mesh: "Mesh", stencil: Stencil | None = None) -> torch.Tensor:
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
    def of(cls, n: int, box_size: float, device=None, dtype=torch.float32) -> "Mesh":
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

    def forward(self, positions: torch.Tensor, n_grid: int | None = None, box_size: float | None = None, stencil: Stencil | None = None) -> torch.Tensor:
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
            out["layers"].append({
                "alpha": float(layer.a * layer.alpha_unit), "a": float(layer.a), "gamma": float(layer.gamma),
                "k_l": float(layer.log_k_l.exp()), "k_s": float(layer.log_k_s.exp()), "nu": float(layer.nu),
            })
        a = self.activation
        out["activation"] = {"mu": float(a.mu), "b1": float(a.log_b1.exp()), "b0": float(a.b0), "tb_mean_mK": float(self.tb_mean)}
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


def ldl_loss(pred: torch.Tensor, target: torch.Tensor, o_s: torch.Tensor, bins: PowerBins, target_power: torch.Tensor, cfg: LDLConfig) -> tuple[torch.Tensor, dict]:
    """loss_real * <|O_s (F - F_t)|> / <F_t> + loss_power * <(ln P_F(k) - ln P_t(k))^2>
    over the shells (P of T_b / <T_b>): JERALD's filtered L1 in real space plus the power
    spectrum the metrics judge."""
    diff = torch.fft.irfftn(torch.fft.rfftn(pred - target) * o_s, s=pred.shape)
    real = diff.abs().mean() / target.mean()
    power = (torch.log(bins(pred) + 1e-30) - torch.log(target_power + 1e-30)).pow(2).mean()
    total = cfg.loss_real * real + cfg.loss_power * power
    return total, {"real": float(real.detach()), "power": float(power.detach())}


# ----------------------------------------------------------------------------- LDL data, training, application
def read_particles(snapshot_path, box_size: float, redshift: float | None = None) -> torch.Tensor:
    """DM particle positions (N, 3) in Mpc/h (float32) of a snapshot (PartType1)."""
    data, _ = camels.read_snapshot(snapshot_path, 1, ["Coordinates"], box_size, redshift)
    return torch.from_numpy(np.asarray(data["Coordinates"], dtype=np.float32))


@dataclass
class LDLSample:
    """One training simulation: particles and their CIC stencil (fixed: cached), the
    smoothed T_b target and its binned P(k)."""

    positions: torch.Tensor
    stencil: Stencil
    tb: torch.Tensor
    power: torch.Tensor


def train_ldl(snapshots, grid_paths, cfg: LDLConfig, checkpoint_path, history_path, expect: dict | None = None, progress: bool = True) -> dict:
    """Fit the LDL parameters on the training simulations (particles -> their T_b grid),
    one simulation per step in turn; resumes from ``checkpoint_path``. Returns the model
    file's content (kind 'ldl')."""
    if len(snapshots) != len(grid_paths):
        raise ValueError(f"{len(snapshots)} snapshots for {len(grid_paths)} grid files")
    samples, attrs = [], {}
    for snap, grid in zip(snapshots, grid_paths):
        data, attrs = read_grids(grid, ("tb",), expect)
        tb = torch.from_numpy(data["tb"]).float()
        box = float(attrs["box_size"])
        n = int(attrs["n_grid"])
        positions = read_particles(snap, box, attrs.get("redshift"))
        samples.append(LDLSample(positions, Stencil.at(positions * (n / box), n), tb, None))
    n, box = int(attrs["n_grid"]), float(attrs["box_size"])
    radius = float(attrs.get("smoothing_radius", 0.0)) if cfg.smoothing else 0.0
    bins = PowerBins(n, box)
    o_s = fourier_weight(n, box, cfg.fourier_n)
    for s in samples:
        s.power = bins(s.tb)
    model = LDL(cfg.layers, box, n, radius, tb_mean=float(np.mean([float(s.tb.mean()) for s in samples])))
    model.calibrate(samples[0].positions)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def compute_loss(step):
        s = samples[step % len(samples)]
        return ldl_loss(model(s.positions, stencil=s.stencil), s.tb, o_s, bins, s.power, cfg)

    def lr_at(step):  # cosine from lr to lr / 10
        return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / max(1, cfg.steps))))

    spec = LoopSpec(kind="ldl", total_steps=cfg.steps, checkpoint_every=cfg.checkpoint_every, validate_every=cfg.steps, progress=progress)
    resume_key = {"config": cfg.to_dict(exclude=("steps", "checkpoint_every")),
                  "data": [str(p) for p in snapshots] + [str(p) for p in grid_paths]}
    final = train(spec, model, optimizer, compute_loss, lr_at, checkpoint_path, history_path, resume_key)
    model.load_state_dict(final["model"])
    log.info("LDL parameters after %d steps: %s", final["step"], json.dumps(model.describe()))
    return {
        "kind": "ldl",
        "model": final["model"],
        "config": cfg.to_dict(),
        "grid": {"box_size": box, "n_grid": n, "smoothing_radius": radius, "redshift": attrs.get("redshift", 0.0)},
        "parameters": model.describe(),
        "steps": final["step"],
        "final_loss": final["history"][-1]["loss"] if final["history"] else float("nan"),
        "training": [str(p) for p in snapshots],
    }


def load_ldl(path) -> tuple[LDL, dict]:
    """The trained LDL model (eval mode) and the model file's content."""
    state = load_checkpoint(path, kind="ldl")
    g = state["grid"]
    model = LDL(int(state["config"]["layers"]), g["box_size"], g["n_grid"], g["smoothing_radius"], 1.0)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise InputError(path, f"weights do not fit an LDL model with {state['config']['layers']} layers: {err}") from err
    return model.eval(), state


@torch.no_grad()
def apply_ldl(model: LDL, positions: torch.Tensor, box_size: float, n_grid: int) -> torch.Tensor:
    """T_b [mK] of a box painted by the trained model; the box must have the training cell."""
    cell, train_cell = box_size / n_grid, model.box_size / model.n_grid
    if not math.isclose(cell, train_cell, rel_tol=1e-6):
        raise ValueError(f"cell of {cell:g} Mpc/h differs from the LDL training cell {train_cell:g} Mpc/h")
    return model(positions, n_grid, box_size)


def run_train_ldl(snapshots, grid_paths, cfg: LDLConfig, model_path, checkpoint_path, history_path, expect: dict | None = None) -> None:
    """One Snakemake job: train (or resume) LDL and write the model file."""
    from .io import save_checkpoint

    save_checkpoint(model_path, train_ldl(snapshots, grid_paths, cfg, checkpoint_path, history_path, expect))


def run_ldl_volume(model_path, snapshot_path, grid_path, out_path, seed: int, simulation: str) -> None:
    """One Snakemake job: paint a held-out simulation's DM-only particles with the trained
    model (``grid_path`` gives the box and the grid attributes) and write the volume."""
    model, _ = load_ldl(model_path)
    _, attrs = read_grids(grid_path, ())
    box, n = float(attrs["box_size"]), int(attrs["n_grid"])
    try:
        tb = apply_ldl(model, read_particles(snapshot_path, box, attrs.get("redshift")), box, n)
    except ValueError as err:
        raise InputError(grid_path, str(err)) from err
    write_baseline(out_path, tb, baseline_attrs(attrs, "ldl", seed, simulation, model_path, {"dm_snapshot": snapshot_path}))
