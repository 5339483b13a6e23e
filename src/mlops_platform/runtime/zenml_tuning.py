"""A measured workaround for per-artifact overhead in ZenML 0.98, applied by the launcher.

For every artifact a step saves, ZenML looks up the package of the data type's module with
`source_utils._get_package_for_module`, which calls `importlib.metadata.packages_distributions()`:
a scan of every installed distribution (about 0.3 s here) per pandas output. The answer cannot
change while a process runs unless packages are installed into it meanwhile, so it is cached.
Measured on synthetic data: a warm training run went from 11.5 s to 9.2 s.
"""

from __future__ import annotations

import functools
import logging

from zenml.utils import source_utils

logger = logging.getLogger(__name__)


def cache_package_lookups() -> bool:
    """Cache ZenML's module-to-package lookup in this process; False if ZenML no longer has it."""
    lookup = getattr(source_utils, "_get_package_for_module", None)
    if lookup is None:
        logger.debug("zenml.utils.source_utils._get_package_for_module is gone; nothing cached.")
        return False
    if not hasattr(lookup, "cache_info"):
        source_utils._get_package_for_module = functools.lru_cache(maxsize=None)(lookup)
    return True
