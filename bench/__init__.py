"""Benchmarks of wabiz.cluster: failover downtime, planned switchover, deploy cost, health-check
latency and message GC, measured on the real testbed and stand-in (``make bench``)."""
