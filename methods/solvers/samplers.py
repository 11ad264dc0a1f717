"""Probability-flow ODE solvers in EDM's sigma parameterization, as pure functions.

Every solver integrates dx/dsigma = (x - D(x; sigma)) / sigma along a given schedule
`sigmas` (decreasing; a trailing 0 means "end in the clean image") starting from `x` at
sigmas[0], and returns `SolverOutput(x, nfe)`: the final sample and the number of denoiser
evaluations it took. They work in the dtype of `x` (EDM samples in float64) and do not
disable autograd, so callers choose `torch.no_grad()` or differentiate through a solve.

`sigmas` may also be (levels, batch): one schedule per sample (consistency distillation
draws adjacent levels per sample); only Heun's churn needs a shared schedule.

Options shared by all solvers:
- `afs`: the analytical first step of paper 004 (SFD; Zhou et al. 2024, AMED): at sigmas[0]
  the data term is negligible, so the first direction is taken as x / sqrt(1 + sigma^2)
  (~ x / sigma at sigma = 80) instead of evaluating the network, saving one NFE. The formula
  is the one zju-pi/diff-sampler uses for SFD.
- `return_states`: indices of trajectory states to return instead of the final sample
  (state 0 = the input at sigmas[0], state i = after step i): `SolverOutput.x` is then
  their stack, shaped (len(return_states), *x.shape). One pass of the solver; SFD reads its
  teacher's trajectory this way (paper 004; diff-sampler's `return_inters`).
- A step whose target is sigma = 0 is a plain Euler step (x <- D(x; sigma)): Heun's
  correction would divide by 0 there (EDM Algorithm 2 skips it), the midpoint of DPM-Solver-2
  would be 0, and DPM-Solver++'s first-order update has exactly this limit.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable, NamedTuple

import torch

from ..core.config import ConfigError, suggest


class SolverOutput(NamedTuple):
    x: torch.Tensor
    nfe: int


class _Counted:
    """Calls the denoiser at one level (a 0-dim tensor as EDM passes it, or (B,1,1,1) per
    sample) and counts the calls."""

    def __init__(self, denoiser: Callable, class_labels: torch.Tensor | None):
        self.denoiser = denoiser
        self.class_labels = class_labels
        self.nfe = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        out = self.denoiser(x, sigma, self.class_labels)
        return out.to(x.dtype)


def _check_sigmas(sigmas: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Validated levels in x's dtype/device, shaped to broadcast against x, and whether the
    schedule ends at 0.

    `sigmas` is (levels,) for one schedule shared by the batch (each level is passed to the
    denoiser as a 0-dim tensor, as EDM does), or (levels, batch) for a schedule per sample
    (e.g. consistency distillation's randomly drawn adjacent levels; levels become (B,1,1,1)).
    """
    sigmas = torch.as_tensor(sigmas)
    if sigmas.dim() not in (1, 2) or sigmas.shape[0] < 2:
        raise ValueError(f"sigmas must be a schedule of at least 2 levels, shaped (levels,) or (levels, batch); "
                         f"got shape {tuple(sigmas.shape)}")
    if sigmas.dim() == 2 and sigmas.shape[1] != x.shape[0]:
        raise ValueError(f"per-sample sigmas have {sigmas.shape[1]} columns for a batch of {x.shape[0]}")
    if not torch.isfinite(sigmas).all() or (sigmas[:-1] <= 0).any() or (sigmas[-1] < 0).any():
        raise ValueError(f"sigmas must be finite and positive (only the last may be 0), got {sigmas.tolist()}")
    if (sigmas[1:] >= sigmas[:-1]).any():
        raise ValueError(f"sigmas must decrease strictly, got {sigmas.tolist()}")
    to_zero = bool((sigmas[-1] == 0).all())
    if not to_zero and (sigmas[-1] == 0).any():
        raise ValueError("per-sample sigmas must end at 0 for every sample or for none")
    sigmas = sigmas.to(device=x.device, dtype=x.dtype)
    if sigmas.dim() == 2:
        sigmas = sigmas.reshape(*sigmas.shape, *([1] * (x.dim() - 1)))
    return sigmas, to_zero


class _States:
    """Collects the states a caller asked for (`return_states`) while a solver runs."""

    def __init__(self, wanted, num_steps: int, x: torch.Tensor):
        self.wanted = None
        if wanted is not None:
            wanted = [int(i) for i in wanted]
            bad = [i for i in wanted if not 0 <= i <= num_steps]
            if bad or not wanted:
                raise ValueError(f"return_states must be a non-empty list of state indices in [0, {num_steps}] "
                                 f"(0 = the input, {num_steps} = the final state); got {wanted}")
            self.wanted, self.got = wanted, {}
        self.add(0, x)

    def add(self, index: int, x: torch.Tensor) -> None:
        if self.wanted is not None and index in self.wanted:
            self.got[index] = x

    def output(self, x: torch.Tensor, nfe: int) -> SolverOutput:
        if self.wanted is None:
            return SolverOutput(x, nfe)
        return SolverOutput(torch.stack([self.got[i] for i in self.wanted]), nfe)


def dynamic_thresholding(x0: torch.Tensor, p: float = 0.995) -> torch.Tensor:
    """DPM-Solver's / Imagen's dynamic thresholding of a data prediction, as diff-sampler's
    `dynamic_thresholding_fn`: s = max(quantile_p(|x0| per sample), 1), x0 <- clamp(x0, -s, s) / s.

    torch.quantile rejects fp16/bf16, and diff-sampler wraps the call in try/except, so its fp16
    GPU runs (the published SFD numbers) leave x0 unchanged: here too, half precision is the identity."""
    if x0.dtype in (torch.float16, torch.bfloat16):
        return x0
    s = torch.quantile(x0.abs().reshape(x0.shape[0], -1), p, dim=1)
    s = torch.clamp(s, min=1.0).reshape(-1, *([1] * (x0.dim() - 1)))
    return torch.clamp(x0, -s, s) / s


def afs_direction(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Analytical first step (paper 004): dx/dsigma at the largest sigma without the network."""
    return x / torch.sqrt(1 + sigma ** 2)


def _round_sigma(denoiser) -> Callable[[torch.Tensor], torch.Tensor]:
    fn = getattr(denoiser, "round_sigma", None)
    return (lambda s: torch.as_tensor(fn(s)).to(s.dtype)) if fn is not None else (lambda s: s)


def euler(denoiser, x: torch.Tensor, sigmas: torch.Tensor, class_labels=None, *, afs: bool = False,
          return_states=None) -> SolverOutput:
    """First-order Euler (= DDIM in EDM's parameterization). NFE = steps (- 1 with AFS)."""
    sigmas, _ = _check_sigmas(sigmas, x)
    states = _States(return_states, sigmas.shape[0] - 1, x)
    D = _Counted(denoiser, class_labels)
    for i, (s_cur, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        d = afs_direction(x, s_cur) if (afs and i == 0) else (x - D(x, s_cur)) / s_cur
        x = x + (s_next - s_cur) * d
        states.add(i + 1, x)
    return states.output(x, D.nfe)


def heun(
    denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    class_labels=None,
    *,
    afs: bool = False,
    S_churn: float = 0.0,
    S_min: float = 0.0,
    S_max: float = float("inf"),
    S_noise: float = 1.0,
    randn_like: Callable[[torch.Tensor], torch.Tensor] = torch.randn_like,
    return_states=None,
) -> SolverOutput:
    """EDM Algorithm 2 (Karras et al. 2022): Heun's 2nd-order method with optional churn.

    With S_churn > 0 each step with S_min <= sigma <= S_max first raises the noise level to
    sigma_hat = sigma (1 + gamma), gamma = min(S_churn / steps, sqrt(2) - 1), adding fresh
    noise drawn by `randn_like` (pass a per-seed generator's, as EDM's generate.py does).
    No correction on a step that ends at sigma = 0. NFE = 2 * steps - 1 with a trailing 0.
    """
    sigmas, to_zero = _check_sigmas(sigmas, x)
    num_steps = sigmas.shape[0] - 1
    if S_churn > 0 and sigmas.dim() > 1:
        raise ValueError("heun: S_churn needs one schedule for the whole batch, not per-sample sigmas")
    round_sigma = _round_sigma(denoiser)
    states = _States(return_states, num_steps, x)
    D = _Counted(denoiser, class_labels)
    for i, (s_cur, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        s_hat, x_hat = s_cur, x
        if S_churn > 0:
            # Drawn on every step (as EDM) so the per-seed noise stream matches EDM's.
            gamma = min(S_churn / num_steps, math.sqrt(2) - 1) if S_min <= s_cur <= S_max else 0.0
            s_hat = round_sigma(s_cur + gamma * s_cur)
            x_hat = x + (s_hat ** 2 - s_cur ** 2).sqrt() * S_noise * randn_like(x)
        d_cur = afs_direction(x_hat, s_hat) if (afs and i == 0) else (x_hat - D(x_hat, s_hat)) / s_hat
        x = x_hat + (s_next - s_hat) * d_cur
        if not (to_zero and i == num_steps - 1):
            d_prime = (x - D(x, s_next)) / s_next
            x = x_hat + (s_next - s_hat) * (0.5 * d_cur + 0.5 * d_prime)
        states.add(i + 1, x)
    return states.output(x, D.nfe)


def dpm_solver_2(
    denoiser, x: torch.Tensor, sigmas: torch.Tensor, class_labels=None, *, afs: bool = False, r: float = 0.5,
    return_states=None,
) -> SolverOutput:
    """DPM-Solver-2 (Lu et al. 2022) in EDM's form: one evaluation at the intermediate level
    sigma_mid = sigma_next^r sigma_cur^(1-r) (geometric midpoint for r = 0.5), then
    x_next = x + (sigma_next - sigma_cur) ((1/(2r)) d_mid + (1 - 1/(2r)) d_cur).
    Second order; NFE = 2 per step (1 on a step to 0)."""
    if not 0 < r <= 1:
        raise ValueError(f"dpm_solver_2: r must lie in (0, 1], got {r}")
    sigmas, to_zero = _check_sigmas(sigmas, x)
    num_steps = sigmas.shape[0] - 1
    states = _States(return_states, num_steps, x)
    D = _Counted(denoiser, class_labels)
    for i, (s_cur, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        d_cur = afs_direction(x, s_cur) if (afs and i == 0) else (x - D(x, s_cur)) / s_cur
        if to_zero and i == num_steps - 1:
            x = x + (s_next - s_cur) * d_cur
            states.add(i + 1, x)
            continue
        s_mid = s_next ** r * s_cur ** (1 - r)
        x_mid = x + (s_mid - s_cur) * d_cur
        d_mid = (x_mid - D(x_mid, s_mid)) / s_mid
        x = x + (s_next - s_cur) * ((1 / (2 * r)) * d_mid + (1 - 1 / (2 * r)) * d_cur)
        states.add(i + 1, x)
    return states.output(x, D.nfe)


def _dpmpp_update(x, s_next, s_hist, d_hist, order, corrected_d2=False):
    """Multistep DPM-Solver++ update with data predictions (Lu et al. 2022b, 'DPM-Solver++',
    multistep 2M/3M), written for the VE/EDM process x = x0 + sigma eps: alpha = 1,
    lambda = -log(sigma), so exp(-h) = sigma_next / sigma_cur.

    The exact step is x_t = e^-h x_s + sum_k c_k h^k x0^(k)(lambda_s) with c_0 = -phi_1,
    c_1 = phi_2, c_2 = -phi_3. D1 estimates h x0' and D2 = (D1_0 - D1_1)/(r0 + r1) estimates
    h^2 x0''/2 (a second divided difference), so the published third-order update
    (dpm-solver, diffusers, diff-sampler: `- phi_3 * D2`) keeps only half the x0'' term: its
    local error is O(h^3) and it converges with order 2 (tests/test_solvers.py measures it).
    `corrected_d2` uses 2 * D2 (as DPM-Solver's single-step 'taylor' update does), which
    gives order 3. The default follows the published code, which SFD's numbers come from."""
    s0, m0 = s_hist[-1], d_hist[-1]
    h = torch.log(s0 / s_next)
    phi_1 = torch.expm1(-h)
    x_next = (s_next / s0) * x - phi_1 * m0
    if order == 1:
        return x_next
    s1, m1 = s_hist[-2], d_hist[-2]
    r0 = torch.log(s1 / s0) / h
    D1_0 = (m0 - m1) / r0
    if order == 2:
        return x_next - 0.5 * phi_1 * D1_0
    s2, m2 = s_hist[-3], d_hist[-3]
    r1 = torch.log(s2 / s1) / h
    D1_1 = (m1 - m2) / r1
    D1 = D1_0 + (r0 / (r0 + r1)) * (D1_0 - D1_1)
    D2 = (2 if corrected_d2 else 1) * (D1_0 - D1_1) / (r0 + r1)
    phi_2 = phi_1 / h + 1
    phi_3 = phi_2 / h - 0.5
    return x_next + phi_2 * D1 - phi_3 * D2


def dpm_solver_pp_3m(
    denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    class_labels=None,
    *,
    afs: bool = False,
    max_order: int = 3,
    lower_order_final: bool = True,
    corrected_d2: bool = False,
    dynamic_threshold: bool = False,
    return_states=None,
) -> SolverOutput:
    """DPM-Solver++(3M): multistep, data prediction, third order; one NFE per step.

    The first steps warm up with orders 1 and 2 (no history yet). With `lower_order_final`
    (DPM-Solver++'s recommendation for few steps; diff-sampler/SFD use it always) the order
    also drops to 2 then 1 over the last steps; turn it off to keep third order throughout,
    e.g. for many steps. A step that ends at sigma = 0 is always first order (its exact limit,
    x <- D(x; sigma)). `corrected_d2`: see `_dpmpp_update` (off = the published formula).
    `dynamic_threshold`: every data prediction put into the history goes through
    `dynamic_thresholding` first, as diff-sampler's `dpm_pp_sampler` does (off by default: in
    its fp16 GPU runs, which SFD's published numbers come from, the call is a silent no-op).
    """
    if max_order not in (1, 2, 3):
        raise ValueError(f"dpm_solver_pp_3m: max_order must be 1, 2 or 3, got {max_order}")
    sigmas, to_zero = _check_sigmas(sigmas, x)
    num_steps = sigmas.shape[0] - 1
    states = _States(return_states, num_steps, x)
    D = _Counted(denoiser, class_labels)
    s_hist: list[torch.Tensor] = []
    d_hist: list[torch.Tensor] = []
    for i, (s_cur, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        if afs and i == 0:
            denoised = x - s_cur * afs_direction(x, s_cur)
        else:
            denoised = D(x, s_cur)
        if dynamic_threshold:
            denoised = dynamic_thresholding(denoised)
        s_hist, d_hist = (s_hist + [s_cur])[-3:], (d_hist + [denoised])[-3:]
        if i + 1 < max_order:
            order = i + 1
        else:
            order = min(max_order, num_steps - i) if lower_order_final else max_order
        if to_zero and i == num_steps - 1:
            order = 1
        x = _dpmpp_update(x, s_next, s_hist, d_hist, order, corrected_d2)
        states.add(i + 1, x)
    return states.output(x, D.nfe)


SOLVERS: dict[str, Callable[..., SolverOutput]] = {
    "euler": euler,
    "heun": heun,
    "dpm_solver_2": dpm_solver_2,
    "dpm_solver_pp_3m": dpm_solver_pp_3m,
}
# Spellings used by the papers and by diff-sampler's command line.
ALIASES = {"ddim": "euler", "edm": "heun", "dpm2": "dpm_solver_2", "dpm_2": "dpm_solver_2", "dpm(2s)": "dpm_solver_2",
           "dpmpp3m": "dpm_solver_pp_3m", "dpm++(3m)": "dpm_solver_pp_3m", "dpmpp": "dpm_solver_pp_3m"}


def get_solver(name: str) -> Callable[..., SolverOutput]:
    key = ALIASES.get(name.lower(), name.lower().replace("-", "_"))
    if key not in SOLVERS:
        raise ConfigError(f"unknown solver {name!r}{suggest(name, SOLVERS)}; choose one of {sorted(SOLVERS)}")
    return SOLVERS[key]


def solver_options(name: str) -> set[str]:
    """Keyword options a solver accepts (beyond denoiser, x, sigmas, class_labels)."""
    params = inspect.signature(get_solver(name)).parameters
    return {p.name for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_solver_options(name: str, options: dict) -> None:
    """Reject options the solver does not have, naming the closest valid one."""
    allowed = solver_options(name)
    for key in options:
        if key not in allowed:
            raise ConfigError(f"solver {name!r} has no option {key!r}{suggest(key, allowed)}; "
                              f"its options: {sorted(allowed)}")


def solve(name: str, denoiser, x: torch.Tensor, sigmas: torch.Tensor, class_labels=None, **options) -> SolverOutput:
    """Run a solver by name with validated options."""
    check_solver_options(name, options)
    return get_solver(name)(denoiser, x, sigmas, class_labels, **options)


def count_nfe(name: str, sigmas: torch.Tensor, **options) -> int:
    """NFE of a solve, found by running the solver itself on a 1-element zero problem."""
    options = dict(options)
    if "randn_like" in solver_options(name):
        options["randn_like"] = torch.zeros_like
    with torch.device("cpu"):  # a counting problem with values, also inside a meta build (dry runs)
        x = torch.zeros(1, dtype=torch.float64)
        sigmas = torch.as_tensor(sigmas, dtype=torch.float64, device="cpu")
        return solve(name, lambda x, sigma, labels: torch.zeros_like(x), x, sigmas, **options).nfe
