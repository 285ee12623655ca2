"""The cluster: replica identity, registration and heartbeats, and the cluster's status."""
