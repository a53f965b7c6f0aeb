"""What the tests share: clusters and SQL helpers (db), the deliberately broken
variants for self-checks (mutation), the reliability harness and failover
nodes, and the operations tools."""
