"""localaws: moto's AWS plus the data planes moto lacks, on 127.0.0.1, for tests and the demo.

FENCED: this package is a test and demo tool. Product code (model/, pipelines/, lambdas/) must never
import it; the product only ever sees an endpoint URL (AWS_ENDPOINT_URL).

What it adds on top of moto 5.2.5's server (run in-process with ThreadedMotoServer):
- Lambda: Invoke runs the function's real handler with the function's environment (in-process,
  serialised, or as a subprocess) instead of echoing the payload.
- Step Functions: real ASL execution; `ecs:runTask.sync` / `sagemaker:createTrainingJob.sync`
  (which moto cannot run) are rewritten at CreateStateMachine time into calls of localaws-owned
  Lambda functions that run the task and wait for it, with the same result shape. The product ASL
  file is never changed.
- ECS: RunTask and services run the task definition's command as local processes (environment from
  the container definition, container ports mapped to free local ports), with rolling deployments,
  a circuit breaker, and a per-service HTTP proxy standing in for the load balancer.
- CloudWatch: metric alarms are evaluated when metric data arrives; state changes emit
  "CloudWatch Alarm State Change" events to matching EventBridge rules and their targets.
"""

from localaws.server import LocalAWS

__all__ = ["LocalAWS"]
