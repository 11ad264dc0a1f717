"""The pure math of each method family, as functions over tensors.

Plugins in `onestep.methods.plugins` orchestrate networks, optimizers and phases and call these
functions, so each loss is testable on tiny tensors against the official code. One module per
family; everything public is re-exported here (`from onestep.methods.losses import ...`).
"""
from .dmd import *  # noqa: F401,F403
from .dmd import __all__ as _dmd_all
from .gan import *  # noqa: F401,F403
from .gan import __all__ as _gan_all
from .sfd import *  # noqa: F401,F403
from .sfd import __all__ as _sfd_all
from .sid import *  # noqa: F401,F403
from .sid import __all__ as _sid_all

__all__ = list(_gan_all) + list(_sid_all) + list(_dmd_all) + list(_sfd_all)
