"""Thin Lambda handlers, one per state-machine task: parse the event, call `pipelines/`, return JSON.

All of them ship in one container image (docker/lambda.Dockerfile); each function's image command
is `lambdas.<name>.handler`.
"""
