"""Canary and shadow releases, one job per module (docs/canary.md):

- `settings`: the strategy, the steps and the bars (`CanarySettings`, environment `ESTEIRA_CANARY_*`);
- `traffic`: the listener's weights, the shadow mark, the candidate's ECS service;
- `alarms`: CloudWatch alarms scoped to the candidate's model version;
- `metrics`: one version's live metrics from CloudWatch, and the drift figure a check publishes;
- `verdict`: the pure decision on a bake window (statistics from `model/drift.py`);
- `actions`: the steps the state machine calls through `lambdas/canary_check.py`.
"""
