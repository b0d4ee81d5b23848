"""Stable Qase case ids for the suites an operator reads in Qase: workflow branches, bad inputs, rollbacks.

The one place that maps a Qase test case to the test that proves it, by pytest node id (relative to the
repository root). tests/qase_plugin.py gives each mapped test the reporter's `qase_id` marker at collection,
so the test files themselves import nothing from Qase. A parametrized test's id covers all its parameter
sets: the reporter sends each set as one result of that case, with the parameters.

An id is the case's number in the Qase project (the 12 of "ESTEIRA-12"). Qase numbers a project's cases
itself; these are the numbers they are meant to have: when the project's cases are created, change a number
here if Qase gave the case another one, never the other way round (a result then lands on a wrong case).
Ids are never reused: a removed test's number stays retired. tests/tools/test_qase_report.py checks that
every id and node id is unique and that every mapped test still exists.
"""

from __future__ import annotations

from typing import NamedTuple

WORKFLOW_BRANCHES = "workflow branches"
BAD_INPUTS = "bad inputs"
ROLLBACKS = "rollbacks"
SUITES = (WORKFLOW_BRANCHES, BAD_INPUTS, ROLLBACKS)


class Case(NamedTuple):
    id: int
    suite: str
    nodeid: str


_WORKFLOW = "tests/workflow/test_workflow_local.py"
_CANARY = "tests/canary/test_canary_release.py"
_HTTP = "tests/serving/test_http.py"
_VALIDATE = "tests/unit/test_validate.py"
_HANDLERS = "tests/workflow/test_handlers.py"

CASES: tuple[Case, ...] = (
    # The release state machine's branches, end to end on the applied stack (slow suites).
    Case(1, WORKFLOW_BRANCHES, f"{_WORKFLOW}::test_happy_path_and_concurrent_start"),
    Case(2, WORKFLOW_BRANCHES, f"{_WORKFLOW}::test_only_the_workflow_user_moves_champion"),
    Case(3, WORKFLOW_BRANCHES, f"{_WORKFLOW}::test_gate_rejection_leaves_serving_alone"),
    Case(4, WORKFLOW_BRANCHES, f"{_WORKFLOW}::test_bad_data_stops_before_training"),
    Case(5, WORKFLOW_BRANCHES, f"{_WORKFLOW}::test_training_failure_notifies_and_touches_nothing"),
    Case(6, WORKFLOW_BRANCHES, f"{_CANARY}::test_canary_moves_through_every_step_and_promotes"),
    Case(7, WORKFLOW_BRANCHES, f"{_CANARY}::test_releasing_the_champion_again_takes_the_all_at_once_path"),
    Case(8, WORKFLOW_BRANCHES, f"{_CANARY}::test_shadow_release_reports_agreement_and_serves_nobody"),
    # Bad inputs: every request the service refuses, every class of bad training data.
    Case(9, BAD_INPUTS, f"{_HTTP}::test_bad_input_is_a_4xx_naming_the_field"),
    Case(10, BAD_INPUTS, f"{_VALIDATE}::test_missing_columns_are_named"),
    Case(11, BAD_INPUTS, f"{_VALIDATE}::test_empty_text_names_row"),
    Case(12, BAD_INPUTS, f"{_VALIDATE}::test_unknown_label_and_declared_new_label"),
    Case(13, BAD_INPUTS, f"{_VALIDATE}::test_empty_label"),
    Case(14, BAD_INPUTS, f"{_VALIDATE}::test_duplicates_dropped_and_conflicts_rejected"),
    Case(15, BAD_INPUTS, f"{_VALIDATE}::test_size_limits"),
    Case(16, BAD_INPUTS, f"{_VALIDATE}::test_bad_encoding_names_the_row"),
    Case(17, BAD_INPUTS, f"{_VALIDATE}::test_control_and_replacement_characters"),
    Case(18, BAD_INPUTS, f"{_VALIDATE}::test_all_errors_reported_not_only_the_first"),
    Case(19, BAD_INPUTS, f"{_VALIDATE}::test_unparseable_and_unsupported"),
    # Rollbacks: a failed deploy or smoke test, a denied deploy, every canary abort, the rollback function.
    Case(20, ROLLBACKS, f"{_WORKFLOW}::test_deploy_failure_rolls_back"),
    Case(21, ROLLBACKS, f"{_WORKFLOW}::test_smoke_failure_rolls_back_the_revision_and_leaves_the_alias"),
    Case(22, ROLLBACKS, f"{_WORKFLOW}::test_a_missing_statement_fails_the_deploy_with_access_denied"),
    Case(23, ROLLBACKS, f"{_CANARY}::test_degraded_candidate_rolled_back_on_low_confidence"),
    Case(24, ROLLBACKS, f"{_CANARY}::test_skewed_candidate_rolled_back_on_prediction_drift"),
    Case(25, ROLLBACKS, f"{_CANARY}::test_slow_candidate_rolled_back_on_p99_latency"),
    Case(26, ROLLBACKS, f"{_CANARY}::test_failing_candidate_rolled_back_on_5xx_rate"),
    Case(27, ROLLBACKS, f"{_CANARY}::test_unknown_strategy_is_refused_and_rolled_back"),
    Case(28, ROLLBACKS, f"{_HANDLERS}::test_validate_evaluate_promote_rollback"),
)

BY_NODEID: dict[str, Case] = {case.nodeid: case for case in CASES}


def case_for(nodeid: str) -> Case | None:
    """The case of a collected test: its node id, or for one parameter set the function's node id."""
    return BY_NODEID.get(nodeid) or BY_NODEID.get(nodeid.split("[", 1)[0])
