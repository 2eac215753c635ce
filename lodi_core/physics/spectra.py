"""Power spectra, cross spectra, the correlation coefficient r(k) and one-point PDFs.

By default the binning is Pylians' (``Pk_library.Pk``): each independent Fourier mode goes
to bin floor(|k| / k_F); the DC bin is dropped; bins run from k_F up to sqrt(3) k_Nyquist;
k is the mean |k| of the bin's modes and P = <|delta_k|^2> V / N^6. So results compare
with Pylians bin by bin.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from .fields import fourier_wavenumbers


def overdensity(field) -> torch.Tensor:
    """delta = field / <field> - 1 (the normalisation of Eq. 15, minus the DC term)."""
    f = torch.as_tensor(field, dtype=torch.float64)
    mean = f.mean()
    if mean == 0:
        raise ValueError("overdensity: the field has zero mean")
    return f / mean - 1.0


def _mode_layout(n: int, box_size: float, device, n_bins: int | None):
    """Bin index and |k| of every rfft mode, and the mask of independent modes (Pylians)."""
    kf = 2 * math.pi / box_size
    kx, ky, kz = fourier_wavenumbers(n, box_size, device=device)
    ix, iy, iz = (torch.round(k / kf).long() for k in (kx, ky, kz))
    kmag = torch.sqrt(kx**2 + ky**2 + kz**2)  # h/Mpc
    middle = n // 2
    even = n % 2 == 0
    if even:  # fftfreq puts the Nyquist mode at -n/2; Pylians counts it as +n/2
        ix = torch.where(ix == -middle, -ix, ix)
        iy = torch.where(iy == -middle, -iy, iy)
    # independent modes: on the kz = 0 (and kz = middle, n even) planes keep half of them
    special_z = (iz == 0) | ((iz == middle) & even)
    special_x = (ix == 0) | ((ix == middle) & even)
    skip = special_z & ((ix < 0) | (special_x & (iy < 0)))
    keep = ~skip
    if n_bins is None:
        # floor of |k| in units of k_F, computed on integers to avoid rounding at exact squares
        k2 = (ix**2 + iy**2 + iz**2).double()
        bin_index = torch.floor(torch.sqrt(k2) + 1e-12).long()
        n_out = int(math.sqrt(3) * middle) + 1
        bin_index = torch.where(bin_index >= n_out, n_out - 1, bin_index)
        edges = None
    else:
        kmax = math.sqrt(3) * middle * kf
        edges = torch.logspace(
            math.log10(kf), math.log10(kmax * (1 + 1e-9)), n_bins + 1, dtype=torch.float64, device=device
        )
        bin_index = torch.bucketize(kmag, edges, right=True)  # 0: below k_F (DC), 1..n_bins
        n_out = n_bins + 1
    return bin_index, kmag, keep, n_out, edges


def _mas_window(n: int, device, mas: str | None) -> torch.Tensor | float:
    """Mass-assignment window W(k) (Pylians' MAS correction divides delta_k by it)."""
    p = {None: 0, "NGP": 1, "CIC": 2, "TSC": 3, "PCS": 4}[mas]
    if p == 0:
        return 1.0
    k_full = torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=torch.float64) * (math.pi / n)
    k_half = torch.fft.rfftfreq(n, d=1.0 / n, device=device, dtype=torch.float64) * (math.pi / n)

    def sinc(x):
        return torch.where(x == 0, torch.ones_like(x), torch.sin(x) / torch.where(x == 0, torch.ones_like(x), x))

    return (sinc(k_full).view(n, 1, 1) * sinc(k_full).view(1, n, 1) * sinc(k_half).view(1, 1, -1)) ** p


@lru_cache(maxsize=4)
def _bins(n: int, box_size: float, device_name: str, n_bins: int | None):
    """Cached per grid: the bin of every independent mode (flat indices into the rfft half
    space), the modes per bin and the mean |k| of each bin."""
    device = torch.device(device_name)
    bin_index, kmag, keep, n_out, _ = _mode_layout(n, box_size, device, n_bins)
    keep_flat = torch.nonzero(keep.reshape(-1)).squeeze(1)
    idx = bin_index.reshape(-1)[keep_flat]
    n_modes = torch.bincount(idx, minlength=n_out).double()
    k_sum = torch.bincount(idx, weights=kmag.reshape(-1)[keep_flat], minlength=n_out)
    return keep_flat, idx, n_out, n_modes, k_sum


def _binned(fields_k: list[torch.Tensor], pairs, n: int, box_size: float, n_bins, device):
    keep_flat, idx, n_out, n_modes, k_sum = _bins(n, float(box_size), str(device), n_bins)
    norm = (box_size / n**2) ** 3
    out = []
    for a, b in pairs:
        prod = (fields_k[a] * fields_k[b].conj()).real.reshape(-1)[keep_flat]
        out.append(torch.bincount(idx, weights=prod.double(), minlength=n_out))
    n_modes, k_sum = n_modes[1:], k_sum[1:]
    valid = n_modes > 0
    k = (k_sum[valid] / n_modes[valid]).cpu().numpy()
    spectra = [(s[1:][valid] / n_modes[valid] * norm).cpu().numpy() for s in out]
    return k, spectra, n_modes[valid].cpu().numpy()


def _fft(field, mas):
    f = torch.as_tensor(field)
    if f.ndim != 3 or len(set(f.shape)) != 1:
        raise ValueError(f"expected a cubic 3D field, got shape {tuple(f.shape)}")
    # single precision in, single-precision FFT (as Pylians); double otherwise
    fk = torch.fft.rfftn(f if f.dtype == torch.float32 else f.to(torch.float64))
    if mas is not None:
        fk = fk / _mas_window(f.shape[0], f.device, mas)
    return fk, f.shape[0], f.device


def power_spectrum(field, box_size: float, n_bins: int | None = None, mas: str | None = None):
    """Auto power spectrum of a 3D field (as given: pass an overdensity for P_delta).

    Returns ``(k, pk, n_modes)``: k [h/Mpc] the mean |k| of each bin's modes, pk in
    (Mpc/h)^3 times the field's units squared, n_modes the independent modes per bin.
    ``n_bins=None`` bins as Pylians (width k_F); an integer gives log-spaced bins from k_F to
    sqrt(3) k_Nyquist (empty bins dropped). ``mas='CIC'`` deconvolves the CIC window.
    """
    fk, n, device = _fft(field, mas)
    k, (pk,), n_modes = _binned([fk], [(0, 0)], n, box_size, n_bins, device)
    return k, pk, n_modes


def cross_spectra(fields, pairs, box_size: float, n_bins: int | None = None, mas: str | None = None):
    """``(k, [P_ab for (a, b) in pairs], n_modes)``: the cross spectra of the listed pairs of
    ``fields`` (indices into it), each field Fourier-transformed once, with the binning of
    :func:`power_spectrum`."""
    transformed = [_fft(f, mas) for f in fields]
    n, device = transformed[0][1], transformed[0][2]
    if any(t[1] != n for t in transformed):
        raise ValueError(f"fields have different grids: {sorted({t[1] for t in transformed})}")
    return _binned([t[0] for t in transformed], pairs, n, box_size, n_bins, device)


def cross_power_spectrum(field_a, field_b, box_size: float, n_bins: int | None = None, mas: str | None = None):
    """``(k, p_ab, p_aa, p_bb, n_modes)`` with the binning of :func:`power_spectrum`."""
    k, (pab, paa, pbb), n_modes = cross_spectra([field_a, field_b], [(0, 1), (0, 0), (1, 1)], box_size, n_bins, mas)
    return k, pab, paa, pbb, n_modes


def cross_correlation(p_ab, p_aa, p_bb) -> np.ndarray:
    """r(k) = P_ab / sqrt(P_aa P_bb) from the three spectra (NaN where a spectrum is 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return p_ab / np.sqrt(p_aa * p_bb)


def correlation_coefficient(field_a, field_b, box_size: float, n_bins: int | None = None, mas: str | None = None):
    """r(k) of two fields; returns ``(k, r, n_modes)``."""
    k, pab, paa, pbb, n_modes = cross_power_spectrum(field_a, field_b, box_size, n_bins, mas)
    return k, cross_correlation(pab, paa, pbb), n_modes


def pdf(values, bins=50, range=None, log10: bool = False, floor: float | None = None):
    """One-point PDF (density-normalised histogram); ``log10`` histograms log10(values), with
    values at or below ``floor`` (default: 0) left out. Returns ``(bin_centres, density)``."""
    v = torch.as_tensor(values).reshape(-1).double().cpu().numpy()
    if log10:
        v = v[v > (0.0 if floor is None else floor)]
        v = np.log10(v)
    hist, edges = np.histogram(v, bins=bins, range=range, density=True)
    return 0.5 * (edges[1:] + edges[:-1]), hist
