"""One rollout worker for every algorithm, behind local / subprocess / Ray backends."""
