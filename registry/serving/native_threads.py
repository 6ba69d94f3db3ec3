"""Native thread pools (OpenMP, BLAS) held to what the function's CPU share can use.

scikit-learn's HistGradientBoosting and KNeighbors predict through OpenMP and BLAS pools
sized to the machine's cores. A Lambda function has a share of them (one vCPU per
1,769 MB of memory), and an OpenMP team is made per calling thread, so a single-row
request paid for threads it could not run. threadpoolctl (a scikit-learn dependency)
sets the limit.

It is set once per calling thread (OpenMP's limit belongs to the thread that sets it;
BLAS's to the process), and again after a model load brings new libraries. Lambda calls
every request on one thread, so a warm request pays one attribute read; setting and
restoring the limit around every call cost about 40 µs (docs/benchmarks.md).
"""

import sys
import threading
from typing import Any

# Lambda gives a function one vCPU's worth of time per this many MB of memory.
LAMBDA_MB_PER_VCPU = 1769


def cpu_share_threads(memory_mb: int | None) -> int:
    """The threads a function with this much memory can run at once; 1 outside Lambda."""
    if memory_mb is None:
        return 1
    return max(1, memory_mb // LAMBDA_MB_PER_VCPU)


class NativeThreads:
    """Holds the native pools of the libraries loaded when refresh() last looked to a limit."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._controller: Any = None
        self._generation = 0
        self._modules_seen = 0
        self._applied = threading.local()

    def refresh(self) -> None:
        """Look again for loaded pools when a model load imported modules (and so may have
        brought a library with a pool): looking costs about 3 ms, a model's first request."""
        if self.limit is None or len(sys.modules) == self._modules_seen:
            return
        from threadpoolctl import ThreadpoolController

        self._controller = ThreadpoolController()
        self._modules_seen = len(sys.modules)
        self._generation += 1

    def apply(self) -> None:
        """Hold the pools to the limit in the calling thread (once per thread and refresh)."""
        if self._controller is None or getattr(self._applied, "generation", 0) == self._generation:
            return
        self._controller.limit(limits=self.limit)
        self._applied.generation = self._generation
