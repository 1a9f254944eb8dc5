"""Checks that records are what they claim: ids that match their content, scores in range, no conflicting duplicates."""

import json

from mtbench.train.config import configuration_id, run_id_for


def identity_problems(records: list[dict], benchmark: str) -> list[str]:
    """Return problems of ``benchmark``'s finished records, which must all pass ``validate_record`` already.

    A record whose config_id or run_id does not match its configuration and
    seed was edited or forged. Two finished records with one run_id but
    different results are flagged, because the table would silently keep one.
    """
    problems = []
    results_by_run: dict[str, str] = {}
    for record in records:
        if record.get("status") != "finished":
            continue
        run_id = record["run_id"]
        try:
            expected_config_id = configuration_id(record)
        except KeyError as error:
            problems.append(f"{benchmark}: run {run_id} lacks the configuration field {error}.")
            continue
        if record["config_id"] != expected_config_id:
            problems.append(f"{benchmark}: run {run_id} has config_id {record['config_id']}, but its configuration gives {expected_config_id}.")
        expected_run_id = run_id_for(expected_config_id, record["seed"])
        if run_id != expected_run_id:
            problems.append(f"{benchmark}: run {run_id} does not match its configuration and seed {record['seed']} (expected run_id {expected_run_id}).")

        for split in ("validation", "test"):
            for metric, value in record[split].items():
                if metric.endswith("accuracy") and not 0.0 <= value <= 1.0:
                    problems.append(f"{benchmark}: run {run_id} has {split} {metric} = {value}, outside [0, 1].")

        results = json.dumps([record["validation"], record["test"]], sort_keys=True)
        if results_by_run.setdefault(run_id, results) != results:
            problems.append(f"{benchmark}: run {run_id} has several finished records with different results; keep one.")
    return problems
