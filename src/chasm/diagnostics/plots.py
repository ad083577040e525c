"""Figures of the diagnostics (PNG bytes, matplotlib's Agg canvas, no display).

Each function returns the PNG as bytes (written by the caller, atomically);
small figures (5 × 3.6 in at 100 dpi) so that a report stays light.
"""

from __future__ import annotations

import numpy as np

__all__ = ["drk_png", "fo_fc_png", "normal_probability_png", "residual_analysis_png"]

SIZE = (5.0, 3.6)
DPI = 100


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    # fixed margins: no layout pass (tight_layout would draw every text once more)
    fig.subplots_adjust(left=0.16, right=0.96, bottom=0.15, top=0.9)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig) -> bytes:
    """Drawn once and encoded once (the pixels of ``savefig``, without its second pass)."""
    from chasm.maps.plot import figure_png

    return figure_png(fig, dpi=DPI)


def fo_fc_png(data, title: str = "") -> bytes:
    """|Fo| against |Fc| (log-log) with the line Fo = Fc."""
    fig, ax = _figure()
    keep = (data.f_calc > 0) & (data.f_obs > 0)
    ax.loglog(data.f_calc[keep], data.f_obs[keep], ".", ms=2.5, color="#1f4e8c", alpha=0.6)
    lo = float(min(data.f_calc[keep].min(), data.f_obs[keep].min())) if keep.any() else 0.1
    hi = float(max(data.f_calc[keep].max(), data.f_obs[keep].max())) if keep.any() else 10.0
    ax.plot([lo, hi], [lo, hi], "-", color="#888", lw=0.8)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")  # no mathtext 10^n: 3x faster to draw
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("|Fc| (e)")
    ax.set_ylabel("|Fo| (e)")
    ax.set_title(title or "Fo against Fc", fontsize=10)
    return _png(fig)


def normal_probability_png(data, title: str = "") -> bytes:
    """Sorted weighted residuals against expected normal quantiles, with y = x."""
    fig, ax = _figure()
    ax.plot(data.expected, data.observed, ".", ms=2.5, color="#1f4e8c")
    e = data.expected
    if len(e):
        ax.plot([e[0], e[-1]], [e[0], e[-1]], "-", color="#888", lw=0.8, label="slope 1")
        ax.plot(
            [e[0], e[-1]],
            [data.slope * e[0] + data.intercept, data.slope * e[-1] + data.intercept],
            "--",
            color="#c0392b",
            lw=0.8,
            label=f"fit: slope {data.slope:.2f}",
        )
        ax.legend(fontsize=8, loc="upper left")
    ax.set_xlabel("expected normal quantile")
    ax.set_ylabel("√w (Fo² − Fc²), sorted")
    ax.set_title(title or "Normal probability plot", fontsize=10)
    return _png(fig)


def drk_png(data, title: str = "") -> bytes:
    """Σ Fo² / Σ Fc² against sinθ/λ of each bin, with the line 1."""
    fig, ax = _figure()
    ax.plot(data.stol_mean, data.ratio, "o-", ms=4, color="#1f4e8c")
    ax.axhline(1.0, color="#888", lw=0.8)
    spread = max(0.05, float(np.max(np.abs(data.ratio - 1.0))) * 1.2) if len(data.ratio) else 0.1
    ax.set_ylim(1.0 - spread, 1.0 + spread)
    ax.set_xlabel("sinθ/λ (Å⁻¹)")
    ax.set_ylabel("Σ Fo² / Σ Fc²")
    ax.set_title(title or "DRK plot", fontsize=10)
    return _png(fig)


def residual_analysis_png(analyses: list, labels: list[str], title: str = "") -> bytes:
    """df(ρ0) against ρ0 of one or more residual maps (e.g. before and after)."""
    fig, ax = _figure()
    for a, label in zip(analyses, labels, strict=True):
        ax.plot(a.levels, a.df, "-", lw=1.2, label=f"{label} (e_gross {a.e_gross:.2f} e)")
    ax.set_xlabel("ρ0 (e Å⁻³)")
    ax.set_ylabel("fractal dimension df(ρ0)")
    ax.set_ylim(bottom=0.0, top=3.0)
    ax.axvline(0.0, color="#888", lw=0.6)
    noise = [a.df_noise for a in analyses if np.isfinite(getattr(a, "df_noise", np.nan))]
    if noise:  # the ceiling a featureless (noise-like) map reaches at rho0 = 0
        ax.axhline(noise[-1], color="#888", lw=0.8, ls="--", label="df(0) of pure noise")
    # the legend below the axes: inside, it hides the tails of the curves
    fig.set_size_inches(SIZE[0], SIZE[1] + 0.6)
    fig.subplots_adjust(bottom=0.33, top=0.92)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    ax.set_title(title or "Residual-density analysis (Meindl & Henn 2008)", fontsize=10)
    return _png(fig)
