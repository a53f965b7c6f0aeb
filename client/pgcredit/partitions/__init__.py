"""A partitioned deployment: the same API served by a proxy database in front of
N partition databases (N a power of two), routed with PL/Proxy by a hash of
(wholesaler_id, retailer_id). PARTITIONING.md describes it for operators.

- rules.py: which function runs where and how views merge; the defaults
  (route by the line, split a batch by its items' lines) need no entry, only
  the exceptions do. The file a contributor edits.
- catalog.py: a partition's API as its own catalog describes it.
- generator.py: the proxy's routing layer, generated from the catalog and the
  rules as one SQL script.
- deployment.py: `migrate_partitions`, which checks, migrates and sets up the
  partitions, configures the cluster and applies the layer.
"""

from .catalog import Catalog, Function, View, read_catalog
from .common import CLUSTER, LOGIN, PartitionSetupError
from .deployment import CONNECT_TIMEOUT, PartitionReport, location, migrate_partitions, partition_of
from .generator import generate_layer, login_grants
from .rules import ROUTES, VIEWS, EachPartition, OnAll, ViewRule

__all__ = [
    "CLUSTER", "CONNECT_TIMEOUT", "LOGIN", "ROUTES", "VIEWS", "Catalog", "EachPartition", "Function", "OnAll",
    "PartitionReport", "PartitionSetupError", "View", "ViewRule", "generate_layer", "location", "login_grants",
    "migrate_partitions", "partition_of", "read_catalog",
]
