"""Helpers to run a real pweza platform in tests: processes on loopback, fake kubelets.

`pweza.testing.platform.Platform` starts a manager and agents as subprocesses;
`pweza.testing.controlplane.ControlPlane` starts a Kubernetes control plane.
"""
