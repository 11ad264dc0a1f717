"""The pure math of each method family, as functions over tensors.

Plugins in `onestep.methods.plugins` orchestrate networks, optimizers and phases and call these
functions, so each loss is testable on tiny tensors against the official code. One module per
family; everything public is re-exported here (`from onestep.methods.losses import ...`).
"""
from .gan import *  # noqa: F401,F403
from .gan import __all__ as _gan_all
from .dmd import *  # noqa: F401,F403
from .dmd import __all__ as _dmd_all

__all__ = list(_gan_all) + list(_dmd_all)
