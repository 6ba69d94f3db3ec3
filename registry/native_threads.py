"""Native thread pools (OpenMP, BLAS) held to what the function's CPU share can use.

scikit-learn's HistGradientBoosting and KNeighbors predict through OpenMP and BLAS pools
sized to the machine's cores. A Lambda function has a share of them (one vCPU per
1,769 MB of memory), and an OpenMP team is made per calling thread, so a single-row
request paid for threads it could not run. threadpoolctl (a scikit-learn dependency)
limits the pools around each predict call, in the calling thread.
"""

from contextlib import AbstractContextManager, nullcontext
from typing import Any

# Lambda gives a function one vCPU's worth of time per this many MB of memory.
LAMBDA_MB_PER_VCPU = 1769


def cpu_share_threads(memory_mb: int | None) -> int:
    """The threads a function with this much memory can run at once; 1 outside Lambda."""
    if memory_mb is None:
        return 1
    return max(1, memory_mb // LAMBDA_MB_PER_VCPU)


class NativeThreads:
    """Limits the native pools of the libraries loaded when refresh() last looked."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._controller: Any = None

    def refresh(self) -> None:
        """Look again for loaded pools: a model just loaded may have brought new ones."""
        if self.limit is None:
            return
        from threadpoolctl import ThreadpoolController

        self._controller = ThreadpoolController()

    def limited(self) -> AbstractContextManager[Any]:
        if self._controller is None:
            return nullcontext()
        limiter: AbstractContextManager[Any] = self._controller.limit(limits=self.limit)
        return limiter
