"""Checks that records are what they claim: ids that match their content, scores in range, no conflicting duplicates."""

import json

from mtbench.train.config import IDENTITY_KEYS, configuration_id, run_id_for


def record_problem(record: dict) -> str | None:
    """Return why a finished, schema-valid ``record`` cannot be trusted, or None.

    A record whose config_id or run_id does not match its configuration and
    seed was edited or forged; an accuracy outside [0, 1] is impossible.
    """
    if record.get("status") != "finished":
        return None
    run_id = record["run_id"]
    missing = [key for key in IDENTITY_KEYS if key not in record]
    if missing:
        return f"run {run_id} lacks the configuration fields {missing}"

    expected_config_id = configuration_id(record)
    if record["config_id"] != expected_config_id:
        return f"run {run_id} has config_id {record['config_id']}, but its configuration gives {expected_config_id}"
    expected_run_id = run_id_for(expected_config_id, record["seed"])
    if run_id != expected_run_id:
        return f"run {run_id} does not match its configuration and seed {record['seed']} (expected run_id {expected_run_id})"

    for split in ("validation", "test"):
        for metric, value in record[split].items():
            if metric.endswith("accuracy") and not 0.0 <= value <= 1.0:
                return f"run {run_id} has {split} {metric} = {value}, outside [0, 1]"
    return None


def conflicting_duplicates(records: list[dict], benchmark: str) -> list[str]:
    """Return a problem for each run_id with several finished records whose results differ.

    The table keeps the last of them, so a conflict would otherwise pass unseen.
    """
    problems = []
    results_by_run: dict[str, str] = {}
    for record in records:
        if record.get("status") != "finished":
            continue
        results = json.dumps([record["validation"], record["test"]], sort_keys=True)
        if results_by_run.setdefault(record["run_id"], results) != results:
            problems.append(f"{benchmark}: run {record['run_id']} has several finished records with different results; the table uses the last. Delete the lines you do not trust.")
    return problems
