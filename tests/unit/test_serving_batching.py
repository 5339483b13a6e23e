"""Micro-batching of concurrent requests: each caller gets exactly its own answer.

The batcher alone (deterministic: the first batch is held until the others are queued), then the
serving service with a small real model: concurrent requests scored in one batch get the scores
they would get alone (to the bit), never another caller's rows, and a bad request in a batch gets
its own refusal while the others are answered.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _raw_frames import raw_frame
from test_serving_core import CONTRACT, _grant, as_request

from mlops_platform.serving.batching import MicroBatcher
from mlops_platform.serving.log import read_log
from mlops_platform.serving.scorer import RealtimeScorer, RequestRejected, ServedModel
from mlops_platform.serving.service import ServingService
from readmission.core import uci
from readmission.core.cohort import build_cohort, split_by_patient
from readmission.core.model import attach_known_history, predict_risk, train_readmission_model
from readmission.core.params import ModelParams, SplitParams
from readmission.pipelines.batch_inference import RISK_COLUMN

WAIT_SECONDS = 20


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the queued requests")
        time.sleep(0.005)


def _concurrently(calls: list[Callable[[], Any]], hold: Callable[[], None]) -> list[Any]:
    """Run `calls[0]` first and, while its batch is held, the others; then release (`hold`).
    Returns each call's result or the exception it raised, in order."""
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as error:
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    threads[0].start()
    hold()
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    return results


class HeldRun:
    """A batch function whose first batch waits until `release`; records every batch."""

    def __init__(self, run: Callable[[Sequence[Any]], list[Any]]) -> None:
        self.inner = run
        self.entered = threading.Event()
        self.released = threading.Event()
        self.batches: list[list[Any]] = []

    def __call__(self, items: Sequence[Any]) -> list[Any]:
        self.batches.append(list(items))
        if not self.entered.is_set():
            self.entered.set()
            assert self.released.wait(WAIT_SECONDS)
        return self.inner(items)


def test_batcher_scores_queued_items_together_and_each_caller_gets_its_own() -> None:
    def double(items: Sequence[int]) -> list[Any]:
        return [ValueError(f"bad {i}") if i < 0 else 2 * i for i in items]

    run = HeldRun(double)
    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_rows=100)
    items = [1, 2, -3, 4, 5]
    calls = [lambda i=i: batcher.submit(i) for i in items]

    def hold() -> None:
        assert run.entered.wait(WAIT_SECONDS)
        # The rest queue behind the held batch, then it is released.
        threading.Thread(
            target=lambda: (
                _wait_until(lambda: len(batcher._pending) == len(items) - 1),
                run.released.set(),
            )
        ).start()

    results = _concurrently(calls, hold)
    assert results[:2] + results[3:] == [2, 4, 8, 10]
    assert isinstance(results[2], ValueError) and str(results[2]) == "bad -3"
    assert run.batches[0] == [1]
    assert sorted(run.batches[1]) == [-3, 2, 4, 5]  # the queued ones, in one batch
    assert batcher.stats.largest == 4 and batcher.stats.batches == 2


def test_batcher_retries_alone_when_a_batch_fails_and_respects_max_rows() -> None:
    def fragile(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise RuntimeError("13 breaks the scorer")
        return [i + 1 for i in items]

    run = HeldRun(fragile)
    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_rows=3)
    items = [0, 1, 13, 2, 3]
    calls = [lambda i=i: batcher.submit(i) for i in items]

    def hold() -> None:
        assert run.entered.wait(WAIT_SECONDS)
        threading.Thread(
            target=lambda: (
                _wait_until(lambda: len(batcher._pending) == len(items) - 1),
                run.released.set(),
            )
        ).start()

    results = _concurrently(calls, hold)
    assert [results[i] for i in (0, 1, 3, 4)] == [1, 2, 3, 4]
    assert isinstance(results[2], RuntimeError)
    assert max(len(batch) for batch in run.batches) <= 3  # never more rows than max_rows
    assert batcher.stats.retried_alone >= 2


def test_a_lone_request_is_scored_at_once() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda items: [i * 3 for i in items])
    assert [batcher.submit(i) for i in range(5)] == [0, 3, 6, 9, 12]
    assert batcher.stats.batches == 5 and batcher.stats.largest == 1


def test_a_lone_request_never_lingers_even_with_a_long_linger() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(
        lambda items: [i * 3 for i in items], linger_seconds=WAIT_SECONDS
    )
    started = time.monotonic()
    assert [batcher.submit(i) for i in range(5)] == [0, 3, 6, 9, 12]
    assert time.monotonic() - started < WAIT_SECONDS / 4  # no batch waited for company


def test_after_a_batch_with_company_the_next_waits_for_as_many_callers() -> None:
    """Steady callers come back a moment after their answers: the batch after one that had
    company waits (up to `linger_seconds`) for as many callers, instead of going half full."""
    run = HeldRun(lambda items: list(items))
    batcher: MicroBatcher[int, int] = MicroBatcher(run, linger_seconds=WAIT_SECONDS)
    first = [threading.Thread(target=batcher.submit, args=(i,)) for i in (1, 2, 3, 4)]
    first[0].start()
    assert run.entered.wait(WAIT_SECONDS)  # batch [1] is held; 2, 3, 4 queue behind it
    for thread in first[1:]:
        thread.start()
    _wait_until(lambda: len(batcher._pending) == 3)
    run.released.set()  # [1] ends with 3 waiting: 4 callers around, so [2, 3, 4] waits for one
    _wait_until(lambda: batcher._lingering)
    assert run.batches == [[1]]
    late = threading.Thread(target=batcher.submit, args=(5,))
    late.start()  # the fourth caller arrives: the batch goes at once, not at the deadline
    started = time.monotonic()
    for thread in [*first, late]:
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive()
    assert time.monotonic() - started < WAIT_SECONDS / 4
    assert [sorted(batch) for batch in run.batches] == [[1], [2, 3, 4, 5]]


def test_a_linger_ends_at_its_deadline_and_company_is_forgotten_after_a_lone_batch() -> None:
    linger = 0.3
    run = HeldRun(lambda items: list(items))
    batcher: MicroBatcher[int, int] = MicroBatcher(run, linger_seconds=linger)
    threads = [threading.Thread(target=batcher.submit, args=(i,)) for i in (1, 2)]
    threads[0].start()
    assert run.entered.wait(WAIT_SECONDS)
    threads[1].start()
    _wait_until(lambda: len(batcher._pending) == 1)
    run.released.set()  # [2] had company ([1] and it): it waits for a second caller, in vain
    started = time.monotonic()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    assert time.monotonic() - started >= linger * 0.9
    started = time.monotonic()
    assert batcher.submit(3) == 3  # the last batch was alone: no wait
    assert time.monotonic() - started < linger / 2
    assert run.batches == [[1], [2], [3]]


def test_no_batch_is_scored_during_a_turn_and_a_waiting_turn_goes_before_the_next_batch() -> None:
    events: list[str] = []

    def record(items: Sequence[int]) -> list[int]:
        events.append(f"batch {sorted(items)}")
        return list(items)

    run = HeldRun(record)
    batcher: MicroBatcher[int, int] = MicroBatcher(run)
    turn_waiting = threading.Event()
    leave_turn = threading.Event()

    def take_turn() -> None:
        turn_waiting.set()
        with batcher.turn():
            events.append("turn")
            assert leave_turn.wait(WAIT_SECONDS)

    first = threading.Thread(target=batcher.submit, args=(1,))
    first.start()
    assert run.entered.wait(WAIT_SECONDS)  # batch [1] is being scored
    turn = threading.Thread(target=take_turn)
    turn.start()
    _wait_until(lambda: batcher._turns_waiting == 1)
    later = [threading.Thread(target=batcher.submit, args=(i,)) for i in (2, 3)]
    for thread in later:
        thread.start()
    _wait_until(lambda: len(batcher._pending) == 2)
    run.released.set()  # batch [1] ends: the waiting turn goes first, the queued requests wait
    _wait_until(lambda: "turn" in events)
    time.sleep(0.2)
    assert events == ["batch [1]", "turn"]
    leave_turn.set()
    for thread in [first, turn, *later]:
        thread.join(WAIT_SECONDS)
    assert events == ["batch [1]", "turn", "batch [2, 3]"]


def test_back_to_back_turns_let_a_pending_request_through_between_them() -> None:
    """A shadow backlog takes one turn after another; a request that arrives during one turn
    is scored before the next, not after the whole backlog."""
    events: list[str] = []
    batcher: MicroBatcher[int, int] = MicroBatcher(
        lambda items: events.append(f"batch {sorted(items)}") or list(items)
    )
    in_first_turn = threading.Event()
    leave_first_turn = threading.Event()

    def backlog() -> None:
        for n in range(4):
            with batcher.turn():
                events.append(f"turn {n}")
                if n == 0:
                    in_first_turn.set()
                    assert leave_first_turn.wait(WAIT_SECONDS)

    shadow = threading.Thread(target=backlog)
    shadow.start()
    assert in_first_turn.wait(WAIT_SECONDS)
    request = threading.Thread(target=batcher.submit, args=(7,))
    request.start()
    _wait_until(lambda: len(batcher._pending) == 1)
    leave_first_turn.set()
    for thread in (shadow, request):
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive()
    assert events == ["turn 0", "batch [7]", "turn 1", "turn 2", "turn 3"]


# -- the service, with a real model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> Any:
    train, validation, _ = split_by_patient(
        build_cohort(raw_frame(2500, seed=3)), SplitParams(seed=1)
    )
    return train_readmission_model(train, validation, ModelParams(max_iter=25))


def _service(model: Any, tmp_path: Path) -> ServingService:
    grant = dataclasses.replace(_grant(), log_dir=str(tmp_path), shadow=False)
    service = ServingService(CONTRACT, grant)
    service._served = ServedModel(model, "readmission", "7", "production", "id-7")
    return service


def _count_shadow_calls(service: ServingService, shadow_model: Any) -> list[int]:
    """The row counts of each call that scores with `shadow_model`, appended as they happen."""
    calls: list[int] = []
    score_apart = service.scorer.score_apart

    def counted(served: ServedModel, frame: pd.DataFrame, spans: Any) -> np.ndarray:
        if served.model is shadow_model:
            calls.append(len(frame))
        return score_apart(served, frame, spans)

    service.scorer.score_apart = counted  # type: ignore[method-assign]
    return calls


def _held(service: ServingService, queued: int) -> Callable[[], None]:
    """Hold the service's first batch until `queued` more requests wait behind it."""
    run = HeldRun(service._score_batch)
    service._batcher._run = run

    def hold() -> None:
        assert run.entered.wait(WAIT_SECONDS)
        threading.Thread(
            target=lambda: (
                _wait_until(lambda: len(service._batcher._pending) == queued),
                run.released.set(),
            )
        ).start()

    return hold


def _requests() -> list[list[dict[str, Any]]]:
    """Requests that tempt a batch to mix callers: one patient's earlier and later encounters in
    two requests (history features), an encounter id that another request also carries."""
    frame = raw_frame(60, seed=41)
    frame = frame.drop_duplicates(uci.PATIENT_ID).reset_index(drop=True)
    single = [as_request(frame.iloc[[i]]) for i in range(6)]
    several = as_request(frame.iloc[6:10])
    earlier = as_request(frame.iloc[[10]])[0]
    later = dict(
        as_request(frame.iloc[[11]])[0],
        patient_nbr=earlier["patient_nbr"],
        encounter_id=earlier["encounter_id"] + 1,
        number_inpatient=earlier["number_inpatient"],
    )
    later["time_in_hospital"] = min(14, earlier["time_in_hospital"] + 3)
    twin = dict(single[0][0], patient_nbr=several[0]["patient_nbr"] + 10_000_000)
    return [*single, several, [earlier], [later], [twin]]


def _alone(model: Any, encounters: list[dict[str, Any]]) -> np.ndarray:
    return predict_risk(model, RealtimeScorer(CONTRACT).frame(encounters))


def test_concurrent_batched_callers_get_only_their_own_rows_scored_as_alone(
    model: Any, tmp_path: Path
) -> None:
    service = _service(model, tmp_path)
    requests = _requests()
    hold = _held(service, len(requests) - 1)
    results = _concurrently([lambda r=r: service.score(r) for r in requests], hold)
    service.log.close()

    assert service._batcher.stats.largest == len(requests) - 1  # really scored as one batch
    for request, result in zip(requests, results, strict=True):
        assert not isinstance(result, Exception), result
        keys = [p[uci.ENCOUNTER_ID] for p in result.predictions]
        assert keys == [e[uci.ENCOUNTER_ID] for e in request]
        served = np.array([p[RISK_COLUMN] for p in result.predictions])
        assert np.array_equal(served, _alone(model, request))  # bit for bit
    # The later encounter of the patient is scored without the earlier one as history, as alone.
    assert len({r.request_id for r in results}) == len(requests)
    logged = read_log(tmp_path).to_pandas()
    for request, result in zip(requests, results, strict=True):
        mine = logged[logged["request_id"] == result.request_id]
        assert mine[uci.ENCOUNTER_ID].tolist() == [e[uci.ENCOUNTER_ID] for e in request]
        assert mine[RISK_COLUMN].tolist() == [p[RISK_COLUMN] for p in result.predictions]


def test_history_of_one_patient_ignores_another_patients_encounter_ids_in_a_batch(
    model: Any, tmp_path: Path
) -> None:
    """The model reads known history: a request carrying, for another patient, the encounter id
    of a known earlier visit must not remove that visit from this patient's history."""
    frame = raw_frame(30, seed=43).drop_duplicates(uci.PATIENT_ID).reset_index(drop=True)
    mine = as_request(frame.iloc[[0]])[0]
    known = pd.DataFrame(
        {
            uci.PATIENT_ID: [mine[uci.PATIENT_ID]] * 2,
            uci.ENCOUNTER_ID: [mine[uci.ENCOUNTER_ID] - 2, mine[uci.ENCOUNTER_ID] - 1],
            "time_in_hospital": [9, 12],
            "number_emergency": [3, 5],
            "number_inpatient": [4, 6],
        }
    )
    with_history = copy.deepcopy(model)
    attach_known_history(with_history, known)
    other = dict(as_request(frame.iloc[[1]])[0], encounter_id=int(known[uci.ENCOUNTER_ID].iloc[1]))
    service = _service(with_history, tmp_path)
    requests = [[mine], [other], [mine]]  # the first is held; the other two share a batch
    hold = _held(service, 2)
    results = _concurrently([lambda r=r: service.score(r) for r in requests], hold)
    service.log.close()
    assert service._batcher.stats.largest == 2
    alone = predict_risk(with_history, RealtimeScorer(CONTRACT).frame([mine]))
    for result in (results[0], results[2]):
        assert np.array_equal([p[RISK_COLUMN] for p in result.predictions], alone)
    without = predict_risk(model, RealtimeScorer(CONTRACT).frame([mine]))
    assert not np.array_equal(alone, without)  # the history does move this score


def test_a_bad_request_in_a_batch_gets_its_own_refusal_and_the_others_their_answers(
    model: Any, tmp_path: Path
) -> None:
    service = _service(model, tmp_path)
    frame = raw_frame(30, seed=45).drop_duplicates(uci.PATIENT_ID).reset_index(drop=True)
    good = [as_request(frame.iloc[[i]]) for i in range(4)]
    bad_age = [dict(good[1][0], age="[200-210)", patient_nbr=1, encounter_id=1)]
    repeated = [good[2][0], dict(good[3][0], encounter_id=good[2][0][uci.ENCOUNTER_ID])]
    requests = [good[0], bad_age, good[1], repeated, good[2], good[3]]
    hold = _held(service, len(requests) - 1)
    results = _concurrently([lambda r=r: service.score(r) for r in requests], hold)
    service.log.close()

    assert isinstance(results[1], RequestRejected)
    assert [e["loc"] for e in results[1].errors] == [["body", "encounters", 0, "age"]]
    assert isinstance(results[3], RequestRejected)
    assert {e["loc"][-1] for e in results[3].errors} == {uci.ENCOUNTER_ID}
    for i in (0, 2, 4, 5):
        served = [p[RISK_COLUMN] for p in results[i].predictions]
        assert np.array_equal(served, _alone(model, requests[i]))
    logged = read_log(tmp_path).to_pandas()
    assert logged["request_id"].nunique() == 4  # the refused are not logged


def test_shadow_scores_of_queued_batches_are_scored_together_and_stay_per_request(
    model: Any, tmp_path: Path
) -> None:
    service = _service(model, tmp_path)
    shadow_model = copy.deepcopy(model)
    service._shadow = ServedModel(shadow_model, "readmission", "8", "staging", "id-8")
    requests = _requests()
    hold = _held(service, len(requests) - 1)
    # The shadow scorer starts only after every answer: both batches wait in its queue.
    service._shadow_worker = threading.current_thread()
    results = _concurrently([lambda r=r: service.score(r) for r in requests], hold)
    assert service._shadow_queue.qsize() == 2
    calls = _count_shadow_calls(service, shadow_model)
    service._shadow_worker = None
    service.start_shadow_scorer()
    service.stop_shadow_scorer()
    service.log.close()

    assert calls == [sum(len(r) for r in requests)]  # one call for both queued batches
    logged = read_log(tmp_path).to_pandas()
    for request, result in zip(requests, results, strict=True):
        mine = logged[(logged["request_id"] == result.request_id) & logged["shadow"]]
        assert mine[uci.ENCOUNTER_ID].tolist() == [e[uci.ENCOUNTER_ID] for e in request]
        assert set(mine["model_version"]) == {"8"}
        assert np.array_equal(mine[RISK_COLUMN].to_numpy(), _alone(shadow_model, request))


def test_shadow_scorer_gathers_requests_into_one_call_and_a_stop_loses_none(
    model: Any, tmp_path: Path
) -> None:
    service = _service(model, tmp_path)
    # A long gathering window: the stop must not wait for it, and must score what was gathered.
    service.contract = CONTRACT.model_copy(update={"shadow_gather_seconds": 5.0})
    shadow_model = copy.deepcopy(model)
    service._shadow = ServedModel(shadow_model, "readmission", "8", "staging", "id-8")
    calls = _count_shadow_calls(service, shadow_model)
    service.start_shadow_scorer()
    requests = _requests()[:4]
    results = [service.score(r) for r in requests]  # one after another: four batches
    assert calls == []  # still gathering: nothing scored on the requests' time
    started = time.monotonic()
    service.stop_shadow_scorer()
    assert time.monotonic() - started < 4  # the stop ends the gathering at once
    service.log.close()
    assert calls == [sum(len(r) for r in requests)]  # the four batches in one call
    logged = read_log(tmp_path).to_pandas()
    for request, result in zip(requests, results, strict=True):
        mine = logged[(logged["request_id"] == result.request_id) & logged["shadow"]]
        assert mine[uci.ENCOUNTER_ID].tolist() == [e[uci.ENCOUNTER_ID] for e in request]
        assert np.array_equal(mine[RISK_COLUMN].to_numpy(), _alone(shadow_model, request))
    assert service.shadow_skipped == 0


def test_shadow_calls_never_exceed_the_contract_rows() -> None:
    from mlops_platform.serving.service import _chunks

    items = [(None, [0] * n, [], []) for n in (3, 2, 4, 9, 1)]
    chunks = _chunks(items, 5)  # type: ignore[arg-type]
    assert [[len(i[1]) for i in chunk] for chunk in chunks] == [[3, 2], [4], [9], [1]]


def test_a_shadow_log_failure_is_counted_and_the_stop_still_ends_the_scorer(
    model: Any, tmp_path: Path
) -> None:
    service = _service(model, tmp_path)
    service.contract = CONTRACT.model_copy(update={"shadow_gather_seconds": 0.0})
    service._shadow = ServedModel(copy.deepcopy(model), "readmission", "8", "staging", "id-8")
    append = service.log.append

    def failing_for_shadow(table: Any) -> None:
        if table.column("shadow")[0].as_py():
            raise OSError("disk full")
        append(table)

    service.log.append = failing_for_shadow  # type: ignore[method-assign]
    service.start_shadow_scorer()
    results = [service.score(r) for r in _requests()[:3]]
    started = time.monotonic()
    service.stop_shadow_scorer()  # would hang on a full queue if the thread had died
    assert time.monotonic() - started < WAIT_SECONDS
    service.log.close()
    assert service.shadow_failures >= 1
    logged = read_log(tmp_path).to_pandas()
    assert not logged["shadow"].any()
    assert set(logged["request_id"]) == {r.request_id for r in results}


def test_a_frozen_version_is_collected_after_the_next_freeze() -> None:
    import gc
    import weakref

    from mlops_platform.serving.service import _freeze_heap

    class Model:
        pass

    old = Model()
    old.self = old  # a reference cycle: only the cyclic collector can free it
    alive = weakref.ref(old)
    try:
        _freeze_heap()  # as at start: `old` is frozen with everything else
        del old
        gc.collect()
        assert alive() is not None  # frozen objects are not collected
        _freeze_heap()  # as after a switch
        assert alive() is None
    finally:
        gc.unfreeze()
