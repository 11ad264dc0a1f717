"""Solvers, schedules and the generators built from denoisers.

    from onestep.methods.solvers import edm_sigmas, heun, SolverGenerator
    x, nfe = heun(denoiser, z.double() * 80, edm_sigmas(18))     # EDM Algorithm 2, 35 NFE
    G = SolverGenerator(denoiser, "dpm_solver_pp_3m", num_steps=10, afs=True)

Solvers are pure functions over (denoiser, x, sigmas, class_labels) returning (x, nfe);
schedules are pure functions returning float64 noise levels.
"""
from .analytic import GaussianDenoiser, exact_ode_solution
from .generator import (DEFAULT_SOLVER, DEFAULT_STEPS, OneStepGenerator, SFDGenerator, SolverGenerator, as_generator,
                        generator_from_record, is_denoiser, load_generator, read_generator_record, save_generator)
from .samplers import (SOLVERS, SolverOutput, afs_direction, check_solver_options, count_nfe, dpm_solver_2,
                       dynamic_thresholding,
                       dpm_solver_pp_3m, euler, get_solver, heun, solve, solver_options)
from .schedules import (RHO, SCHEDULES, SIGMA_MAX, SIGMA_MIN, append_zero, edm_sigmas, logsnr_uniform_sigmas,
                        make_sigmas, reversed_index_sigma, time_uniform_sigmas)

__all__ = [
    "euler", "heun", "dpm_solver_2", "dpm_solver_pp_3m", "SOLVERS", "SolverOutput", "afs_direction", "get_solver",
    "dynamic_thresholding",
    "solve", "solver_options", "check_solver_options", "count_nfe",
    "edm_sigmas", "logsnr_uniform_sigmas", "time_uniform_sigmas", "reversed_index_sigma", "make_sigmas",
    "append_zero", "SCHEDULES", "SIGMA_MIN", "SIGMA_MAX", "RHO",
    "SolverGenerator", "OneStepGenerator", "SFDGenerator", "as_generator", "is_denoiser", "save_generator", "load_generator",
    "read_generator_record", "generator_from_record", "DEFAULT_SOLVER", "DEFAULT_STEPS",
    "GaussianDenoiser", "exact_ode_solution",
]
