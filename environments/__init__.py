"""onestep.environments: where runs execute: local and Slurm executors (submitit),
torch.distributed set-up, cluster profiles, environment and container specs."""
