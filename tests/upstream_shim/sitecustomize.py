"""Child Python processes of the upstream tests get the same KernelSpecManager as the test process."""

import os

if os.environ.get("KK_UPSTREAM_MODE", "stock") != "stock":
    import sys

    import kk_upstream_patch

    _cls = kk_upstream_patch.install()
    _log = os.environ.get(kk_upstream_patch.CHILD_LOG_VAR)
    if _log:
        with open(_log, "a", encoding="utf-8") as _f:
            _argv = " ".join(getattr(sys, "orig_argv", sys.argv))
            _f.write(f"{_argv}\t{kk_upstream_patch.describe(_cls)}\n")
