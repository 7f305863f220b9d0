"""The worker's public serving port: token auth, v1 predict, Open Inference Protocol v2."""
