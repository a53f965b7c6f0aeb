"""What the reader, the generator and the deployment share: the names of the
PL/Proxy cluster and of the proxy's login on the partitions, and the error
that refuses a set-up."""

from __future__ import annotations

CLUSTER = "credit_partitions"
LOGIN = "credit_proxy"  # the role the proxy logs into partitions as


class PartitionSetupError(RuntimeError):
    """migrate --partitions refused: the message says why and what to do."""
