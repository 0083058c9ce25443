"""Case records and reports: typed, JSON round-trippable, and never read from another schema."""
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from case_records import case_record, report_of
from harness.records import CaseRecord, RecordError, Report, Status, decode_bits, encode_bits, summarize


def test_a_record_round_trips_through_json_exactly():
    record = case_record(n=3, correct=2, accuracy=2 / 3, interval95=(0.2, 0.9), per_sample=encode_bits(
        np.array([True, False, True])), data={"sha256": "d"}, metrics={"x": 1}, status="regressed",
                         model_provenance={"weights_sha256": "w"})
    document = json.loads(json.dumps(record.to_json()))
    assert CaseRecord.from_json(document) == record
    assert document["status"] == "regressed" and document["interval95"] == [0.2, 0.9]
    assert "model_provenance" not in record.to_json(with_provenance=False)
    assert record.bits().tolist() == [True, False, True]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(surprise=1), "unknown field"),
    (lambda d: d.update(status="fine"), "unknown status 'fine'"),
    (lambda d: d.pop("key"), "missing field"),
])
def test_records_of_another_schema_are_refused(change, message):
    document = case_record().to_json()
    change(document)
    with pytest.raises(RecordError, match=message):
        CaseRecord.from_json(document)


def test_unjudged_records_cannot_be_read_back():
    document = CaseRecord(**case_record().identity()).to_json()
    assert document["status"] is None
    with pytest.raises(RecordError, match="unknown status None"):
        CaseRecord.from_json(document)


def test_an_unmeasured_record_holds_its_identity_and_why():
    record = CaseRecord.unmeasured(case_record().identity(), Status.NOT_RUN, "skipped: no data")
    assert not record.measured and record.status is Status.NOT_RUN and record.message == "skipped: no data"
    with pytest.raises(RecordError, match="no per-sample results"):
        record.bits()


def test_status_order_and_failing_statuses():
    assert [s.value for s in Status] == ["passed", "regressed", "no-baseline", "protocol-mismatch", "recorded",
                                         "error", "not-run"]
    assert {s for s in Status if s.failing} == {Status.REGRESSED, Status.ERROR, Status.PROTOCOL_MISMATCH,
                                                Status.NO_BASELINE}
    assert {s for s in Status if s.ok} == {Status.PASSED, Status.RECORDED}
    assert summarize([case_record(), case_record(status="error")]) == {
        "passed": 1, "regressed": 0, "no-baseline": 0, "protocol-mismatch": 0, "recorded": 0, "error": 1, "not-run": 0}


def test_a_report_round_trips_and_names_its_file_when_it_is_not_one():
    report = report_of([case_record(n=2, correct=1, accuracy=0.5, per_sample=encode_bits(np.array([True, False])))])
    assert Report.from_json(json.loads(json.dumps(report.to_json()))) == report
    with pytest.raises(RecordError, match="old.json: not a robustness-gate report"):
        Report.from_json({"schema_version": 0}, "old.json")
    broken = report.to_json()
    broken["cases"][0]["status"] = "green"
    with pytest.raises(RecordError, match="x.json: case 'synth-clip-clean': unknown status"):
        Report.from_json(broken, "x.json")


def test_bits_round_trip_and_refuse_the_wrong_length():
    bits = np.array([True, False, True, True, False, False, True, False, True])
    assert decode_bits(encode_bits(bits), 9).tolist() == bits.tolist()
    with pytest.raises(ValueError, match="expected n=17"):
        decode_bits(encode_bits(bits), 17)


@given(st.lists(st.booleans(), max_size=300))
def test_per_sample_bits_round_trip(values):
    bits = np.array(values, dtype=bool)
    assert np.array_equal(decode_bits(encode_bits(bits), bits.size), bits)


def test_per_sample_values_round_trip_with_infinity_as_null():
    from case_records import measured
    from harness.records import CaseRecord, RecordError, encode_values

    values = np.array([0.0, 0.0039215686, np.inf])
    record = measured([False, False, True], per_sample_values=encode_values(values))
    again = CaseRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert again.per_sample_values == [0.0, 0.0039215686, None]
    assert np.array_equal(again.values(), values)
    assert measured([True]).values() is None
    with pytest.raises(RecordError, match="per_sample_values"):
        measured([True, False], per_sample_values=[0.1]).values()
