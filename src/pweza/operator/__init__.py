"""The Kubernetes operator: pweza.ai/v1 custom resources -> Deployments, autoscalers and the manager."""
