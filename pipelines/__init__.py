"""Each lifecycle step once, as a function with explicit inputs and a JSON-ready result.

The `esteira` CLI, the Lambda handlers, the ECS tasks and the local demo all call these functions.
"""
