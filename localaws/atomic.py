"""Make moto's DynamoDB item writes atomic, as real DynamoDB's are.

DynamoDB serialises writes to an item, so a conditional PutItem/UpdateItem/DeleteItem is an atomic
check-and-set: among any number of concurrent callers exactly one wins. The workflow lock and the
retrain cooldown (pipelines/lock.py, pipelines/retrain_trigger.py) rely on that guarantee. moto 5.2.5
evaluates the condition and writes in two Python steps with no lock, so two threads of a threaded
server (or of a test) can both pass the check: the emulator, not the product, lets a storm start two
executions. One process-wide lock around moto's write paths restores the AWS behaviour.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item", "execute_statement")
_LOCK = threading.RLock()
_MARK = "_localaws_atomic"


def serialise_dynamodb_writes() -> None:
    """Idempotent: wrap each write of moto's DynamoDBBackend in one lock (the patch stays for the process)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    # moto's UpdateItem handler also copies the old item (for ReturnValues) before it calls the backend,
    # unlocked: a concurrent writer can change the item mid-copy ("dictionary changed size during
    # iteration", seen in CI). DynamoDB reads an item atomically, so the handlers' writes take the lock too.
    targets: list[tuple[type, str]] = [(DynamoDBBackend, name) for name in _WRITES]
    targets += [(DynamoHandler, name) for name in ("put_item", "update_item", "delete_item")]
    for owner, name in targets:
        original: Callable[..., Any] = getattr(owner, name)
        if getattr(original, _MARK, False):
            continue

        def locked(*args: Any, __original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            with _LOCK:
                return __original(*args, **kwargs)

        functools.update_wrapper(locked, original)
        setattr(locked, _MARK, True)
        setattr(owner, name, locked)
