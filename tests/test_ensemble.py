"""Home's ensemble row: measured into trained/ensemble.json, shown only while its members are
the trained files as they are."""

from __future__ import annotations

import pytest

from fer_core.data import load_dataset
from fer_core.evaluation.ensemble import read_ensemble_record, write_ensemble_record
from fer_core.errors import FerError
from fer_core.training.promote import promote

pytestmark = pytest.mark.slow


def test_the_record_is_the_ensembles_and_goes_out_of_date_with_its_members(tiny_run, folder_dataset, tmp_path):
    from fer_core.artifacts import load_model
    from fer_core.evaluation import evaluate

    trained = tmp_path / "trained"
    with pytest.raises(FerError, match="two or more trained models"):
        write_ensemble_record(load_dataset(folder_dataset), root=trained)
    promote(tiny_run, "a", dest_root=trained)
    promote(tiny_run, "b", dest_root=trained, compact=False, again=True)  # another file: float32 weights
    dataset = load_dataset(folder_dataset)
    record = write_ensemble_record(dataset, split="publictest", root=trained)
    expected = evaluate([load_model(trained / "a"), load_model(trained / "b")], dataset, split="PublicTest").metrics
    assert record["accuracy"] == pytest.approx(expected["accuracy"]) and record["split"] == "PublicTest"
    assert set(record) >= {"with_tta", "with_flip_zoom", "members", "command"}
    assert read_ensemble_record(trained) == (record, None)
    promote(tiny_run, "b", dest_root=trained, replace=True)  # b is now another file
    assert read_ensemble_record(trained) == (None, "b was replaced since it was measured")
    promote(tiny_run, "c", dest_root=trained, again=True)
    assert read_ensemble_record(trained)[1] == "the trained models changed since it was measured"
