"""What an operator watches: Prometheus metrics, access logs with request ids, log formats.

Other modules report through `dockyard.observability.metrics` (a small, stable set of functions such as
`login_failed()`); the request middleware and the /metrics endpoint are wired in by `dockyard.app`.
"""
