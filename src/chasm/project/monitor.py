"""Progress of a run: one line per cycle, the verbose details, Ctrl-C.

:class:`Monitor` is the per-cycle callback of a stage (line, details,
warnings, checkpoint, stop); :class:`Probe` keeps the data sets' last
evaluations for the figures of the cycle lines; :class:`SigintStop` turns the
first SIGINT into a stop after the cycle in progress (:mod:`chasm.project.run`
describes the behaviour).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from chasm.refine.problem import Evaluation, WeightedEvaluation
from chasm.refine.results import CycleInfo

if TYPE_CHECKING:
    from chasm.project.checkpoint import Session

__all__ = ["cycle_line", "Eta", "Monitor", "Probe", "SigintStop", "Stop", "HUGE_SHIFT_SU"]


#: A cycle with max |shift|/su above this is reported as a warning.
HUGE_SHIFT_SU = 100.0


def cycle_line(info: CycleInfo, agreement: dict | None = None, seconds: float = 0.0) -> str:
    """``stage  cycle  score  agreement  GOF  max shift/su (name)  GN step/su  grad/su  seconds``.

    ``max shift/su`` is the step taken (damped or limited); ``GN step/su`` and
    ``grad/su`` are the convergence figures of the point the cycle started from
    (the undamped step and the gradient, in su; both below tol at convergence).

    Parameters
    ----------
    info : CycleInfo
    agreement : dict, optional
        Data-set name -> (label, value), e.g. ``{"xray": ("wR2", 0.031)}``
        (default: wR2 = ``info.wr`` for every set the solver saw).
    seconds : float
        Time of the cycle.
    """
    if agreement is None:
        agreement = {k: ("wR2", v) for k, v in info.wr.items()}
    wr = " ".join(f"{label}({k})={v:.4f}" for k, (label, v) in agreement.items())
    flag = "" if info.accepted else "  [rejected]"
    return (
        f"{info.stage:<12s} {info.cycle:3d}  score={info.score:.6g}  {wr}  "
        f"GOF={info.gof:.3f}  max shift/su={info.max_shift_su:.3g} ({info.max_shift_name})"
        f"  GN step/su={info.gn_shift:.2g} grad/su={info.gradient:.2g}"
        f"  {seconds:.2f}s{flag}"
    )


class Stop(BaseException):
    """Raised by the cycle callback after a SIGINT; carries the cycle's :class:`CycleInfo`.

    A BaseException (like KeyboardInterrupt) so that no ``except Exception`` on
    the way out of the solver takes it for a failure.
    """

    def __init__(self, info: CycleInfo):
        super().__init__(info.stage)
        self.info = info


class SigintStop:
    """First SIGINT: ask for a stop after the cycle in progress; second: KeyboardInterrupt.

    Installed only in the main thread and not over an ignored SIGINT (a
    background job); the previous handler comes back on exit.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.requested = False
        self._previous = None
        self._installed = False

    def __enter__(self) -> SigintStop:
        if self.enabled and threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:
                signal.signal(signal.SIGINT, self._handle)
                self._previous = signal.SIG_DFL if previous is None else previous
                self._installed = True
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # os.write, not print: the main thread may be inside a write to the same stream
        os.write(2, b"\nchasm: stopping after the cycle in progress (Ctrl-C again to abort now)\n")


class Probe:
    """The data sets' last evaluations, for the cycle lines.

    Observes the solver's evaluations of the data sets (an observer of the
    refinement, :attr:`~chasm.refine.refinement.Refinement.observers`, removed
    on exit; the data sets are not touched) to keep each set's last
    :class:`~chasm.refine.problem.Evaluation` and the parameters it was made
    at, and the time spent in evaluations. From them: Rw(1−R) of flipping
    ratios, N_e and c_e, and, for a cycle whose point was the last one
    evaluated (an accepted step), the gradient share of every set, computed
    as the solver does at a stage's solution
    (:class:`~chasm.refine.results.DatasetFit`).
    """

    def __init__(self, refinement):
        self.ref = refinement
        self.last: dict[str, tuple[np.ndarray, object]] = {}
        self.seconds = 0.0
        self.count = 0
        self._reduction: np.ndarray | None = None
        self._pnd_den: dict[str, float] = {}

    def __enter__(self) -> Probe:
        self.ref.observers.append(self._observe)
        return self

    def __exit__(self, *exc) -> None:
        self.ref.observers.remove(self._observe)

    def _observe(self, name: str, p: np.ndarray, ev: Evaluation, seconds: float) -> None:
        """A data set was evaluated by the solver (:attr:`Refinement.observers`)."""
        self.seconds += seconds
        self.count += 1
        self.last[name] = (np.array(p, dtype=float), ev)

    def new_stage(self) -> None:
        """Forget what depends on the stage (window, free parameters)."""
        self._reduction = None
        self._pnd_den = {}
        self.last = {}
        self.clock()

    def clock(self) -> tuple[float, int]:
        """Seconds in evaluations and their number since the last call."""
        out = (self.seconds, self.count)
        self.seconds, self.count = 0.0, 0
        return out

    def agreement(self, info: CycleInfo) -> dict[str, tuple[str, float]]:
        """Data-set name -> (label, value): wR2 (F²), wR (F) or Rw (flipping ratios)."""
        out = {}
        for d in self.ref.datasets:
            if d.name not in info.chi2:
                continue
            if d.kind == "pnd" and self._rw_denominator(d.name):
                out[d.name] = ("Rw", float(np.sqrt(info.chi2[d.name] / self._pnd_den[d.name])))
            elif d.kind == "pnd":
                out[d.name] = ("wR", info.wr[d.name])
            else:
                observable = getattr(getattr(d, "options", None), "observable", "F2")
                out[d.name] = ("wR2" if observable == "F2" else "wR", info.wr[d.name])
        return out

    def _rw_denominator(self, name: str) -> float:
        """Σ w (R_o − 1)² of a flipping-ratio set in the stage (0 when unknown)."""
        if name not in self._pnd_den and name in self.last:
            ev = self.last[name][1]
            d = next(x for x in self.ref.datasets if x.name == name)
            one = 0.0 if getattr(d, "asymmetry", False) else 1.0  # A = 0: no contrast
            self._pnd_den[name] = float(np.sum(ev.weights * (ev.y_obs - one) ** 2))
        return self._pnd_den.get(name, 0.0)

    def details(self, info: CycleInfo, seconds: float, evals: tuple[float, int]) -> list[str]:
        """The verbose lines of a cycle: per set N, χ², c_e, gradient share; timing."""
        # N_e and c_e as the solver used them (CycleInfo), in the order of the data sets
        names = [d.name for d in self.ref.datasets if d.name in info.chi2]
        names += [n for n in info.chi2 if n not in names]  # the restraints
        rows = {n: (info.n[n], info.chi2[n], info.factors[n]) for n in names}
        shares = self.gradient_shares(info, {k: v[2] for k, v in rows.items()})
        out = []
        for name, (n, chi2, c) in rows.items():
            share = "-" if shares is None else f"{shares[name]:.3f}"
            out.append(
                f"    {name:<16s} N={n:<6d} chi2={chi2:<12.6g} c_e={c:<10.4g} grad.share={share}"
            )
        t_eval, n_eval = evals
        out.append(
            f"    time: {t_eval:.2f}s in {n_eval} evaluation(s) of the data, "
            f"{max(seconds - t_eval, 0.0):.2f}s normal equations and solve"
        )
        return out

    def gradient_shares(self, info: CycleInfo, factors: dict) -> dict | None:
        """‖D⁻¹ c_e (J_e T)ᵀ W_e r_e‖ / Σ ‖…‖ at the cycle's point (None if not at hand)."""
        import scipy.sparse as sps

        ref = self.ref
        sets = [n for n in factors if n != "restraints"]
        if any(n not in self.last or not np.array_equal(self.last[n][0], info.p) for n in sets):
            return None
        if self._reduction is None:
            self._reduction = ref.all_constraints().reduce(ref.params).T
        T = self._reduction
        used = np.flatnonzero(np.any(T != 0.0, axis=1))
        tu = sps.csr_array(T[used]).T  # (n_z, used)
        d2 = np.zeros(T.shape[1])
        grads = {}
        for name in sets:
            ev = self.last[name][1]
            c = factors[name]
            if isinstance(ev, WeightedEvaluation):  # √w J and √w r as they are: no J formed
                tw = sps.csr_array(T[ev.columns])  # (m, n_z)
                g = np.zeros(T.shape[1])
                for b0 in range(0, ev.rows.shape[0], 4096):
                    block = ev.rows[b0 : b0 + 4096]
                    at = np.asarray((tw.T @ block[:, :-1].T).T)  # √w J T, (rows, n_z)
                    d2 += c * np.einsum("ij,ij->j", at, at)
                    g += at.T @ block[:, -1]
                grads[name] = c * g
                continue
            jt = np.asarray(tu @ np.asarray(ev.jacobian)[:, used].T)  # (J T)ᵀ, (n_z, n)
            w = np.asarray(ev.weights)
            d2 += c * ((jt * jt) @ w)
            grads[name] = c * (jt @ (w * (np.asarray(ev.y_obs) - np.asarray(ev.y_calc))))
        if "restraints" in factors:
            names, g = ref.params.names, np.zeros(T.shape[1])
            for r in ref.restraints:
                row = np.zeros(len(names))
                for name, c in r.coefficients().items():
                    row[names.index(name)] += c
                w = 1.0 / r.sigma**2
                rt = row @ T
                d2 += w * rt**2
                g += w * (r.target - row @ info.p) * rt
            grads["restraints"] = g
        d = np.sqrt(np.where(d2 > 0, d2, 1.0))
        norms = {n: float(np.linalg.norm(g / d)) for n, g in grads.items()}
        total = sum(norms.values())
        return {n: (v / total if total > 0 else 0.0) for n, v in norms.items()}


class Eta:
    """Stage count and time left, for the printed cycle lines (``stage 2/4  ETA 12 s``).

    The time left is the mean cycle time of the run so far times the cycles
    expected to remain: in the stage running, its budget left, but no more
    than the mean number of cycles the completed stages of this run took
    (one more at least); in each later stage, that mean too, capped by its
    budget. Before any stage has completed only the budgets are known, and
    the figure is an upper bound, printed ``ETA <= 40 s``.

    Parameters
    ----------
    budgets : list of int
        Cycle budgets (max_cycles) of the stages this run still has to do,
        the first being the one about to start.
    first : int
        Number of the first of them among all the stages asked for (1-based).
    total : int
        Stages asked for.
    """

    def __init__(self, budgets: list[int], first: int = 1, total: int | None = None):
        self.budgets = list(budgets)
        self.first = first
        self.total = len(budgets) + first - 1 if total is None else total
        self.stage = 0  # index into budgets of the stage running
        self.seconds = 0.0
        self.cycles = 0
        self.stage_cycles: list[int] = []  # cycles of the stages completed in this run

    def record(self, seconds: float) -> None:
        """One more cycle of the stage running took ``seconds``."""
        self.seconds += seconds
        self.cycles += 1

    def stage_done(self, cycles: int) -> None:
        """The stage running completed after ``cycles`` cycles; the next one starts."""
        self.stage_cycles.append(cycles)
        self.stage += 1

    def seconds_left(self, cycle: int) -> tuple[float, bool]:
        """(seconds, upper bound?) after cycle ``cycle`` of the stage running."""
        mean = self.seconds / self.cycles if self.cycles else 0.0
        left = max(self.budgets[self.stage] - cycle, 0)
        later = self.budgets[self.stage + 1 :]
        if not self.stage_cycles:
            return mean * (left + sum(later)), True
        typical = sum(self.stage_cycles) / len(self.stage_cycles)
        if left:
            left = min(left, max(typical - cycle, 1.0))
        return mean * (left + sum(min(b, typical) for b in later)), False

    def text(self, cycle: int) -> str:
        """``stage k/n  ETA s`` after cycle ``cycle`` of the stage running."""
        seconds, bound = self.seconds_left(cycle)
        return (
            f"stage {self.first + self.stage}/{self.total}  "
            f"ETA {'<=' if bound else ''}{seconds:.0f} s"
        )


class Monitor:
    """The per-cycle callback of a stage: line, details, warnings, checkpoint, stop."""

    def __init__(
        self,
        session: Session,
        probe: Probe,
        stop: SigintStop,
        say: Callable[[str], None],
        verbose: bool,
        eta: Eta | None = None,
    ):
        self.session, self.probe, self.stop = session, probe, stop
        self.say, self.verbose, self.eta = say, verbose, eta
        self.accepted: dict | None = None  # p and cycle of the last accepted step
        probe.new_stage()
        self.mark = time.perf_counter()

    def __call__(self, info: CycleInfo) -> None:
        now = time.perf_counter()
        seconds, self.mark = now - self.mark, now
        evals = self.probe.clock()
        line = cycle_line(info, self.probe.agreement(info), seconds)
        self.session.lines.append(line)  # the listing's line: no ETA
        if self.eta is None:
            self.say(line)
        else:
            self.eta.record(seconds)
            self.say(f"{line}  {self.eta.text(info.cycle)}")
        if self.verbose:
            for x in self.probe.details(info, seconds, evals):
                self.say(x)
        if info.max_shift_su > HUGE_SHIFT_SU:
            w = (
                f"stage {info.stage}, cycle {info.cycle}: max shift/su = {info.max_shift_su:.3g} "
                f"({info.max_shift_name}); check its start value or set refinement.max_shift_su"
            )
            self.session.warnings.append(("", w))
            self.say(f"warning: {w}")
        if info.accepted:
            self.accepted = {"p": info.p.copy(), "cycle": info.cycle}
            self.session.checkpoint(info.p, current={"stage": info.stage, "cycle": info.cycle})
        if self.stop.requested:
            raise Stop(info)
        self.mark = time.perf_counter()  # the checkpoint is not the next cycle's time
