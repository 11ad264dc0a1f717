"""Checkpoint I/O: the one way to load a network (`load_network`), our own format
(`save_network`: NAME.safetensors + NAME.json), EDM's network pickles read without running
code from them (`load_edm_pickle`), and resume state (`save_resume_state`/`load_resume_state`).
Every problem with a file raises `CheckpointError` naming the file and the fix.
"""
from .edm_pickle import InertRecord, PersistentRecord, load_edm_pickle
from .errors import CheckpointError
from .locate import checkpoint_dirs, locate_checkpoint
from .network_io import checkpoint_paths, load_network, read_network_info, save_network, state_checksum
from .resume_io import load_resume_state, save_resume_state

__all__ = [
    "CheckpointError", "load_network", "save_network", "read_network_info", "state_checksum", "checkpoint_paths",
    "load_edm_pickle", "PersistentRecord", "InertRecord", "locate_checkpoint", "checkpoint_dirs",
    "save_resume_state", "load_resume_state",
]
