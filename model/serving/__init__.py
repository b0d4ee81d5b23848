"""The inference service run by ECS Fargate: `python -m model.serving` (see docs/serving.md)."""
