"""bench/code_metrics.py on this checkout: the stage rules issue 14 established stay true (static reading, fast)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from code_metrics import measure, package_of, stage_of  # noqa: E402


def test_priors_train_eval_model_keep_their_stage():
    r = measure(ROOT)
    mine = ("priors", "train", "eval", "model", "data")
    # priors import nothing from data (the head proxy lives in head_template), nothing goes upward from these stages
    assert not [e for e in r["upward"] if package_of(e[0]) in mine], r["upward"]
    # the evaluation library does not import the trainer; only the `avat3r eval` entry point reads training runs
    assert not [e for e in r["sideways"] if package_of(e[0]) == "eval" and stage_of(e[0]) != "cli"], r["sideways"]
    assert not [c for c in r["module_cycles"] if any(package_of(m) in mine for m in c)], r["module_cycles"]
    assert r["module_cycles_top_level"] == []
    assert r["largest"] and r["largest"][0][0] >= r["largest"][-1][0]


def test_a_planted_upward_import_and_cycle_are_found(tmp_path):
    pkg = tmp_path / "avat3r"
    (pkg / "priors").mkdir(parents=True)
    (pkg / "data").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "priors" / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "priors" / "hull.py").write_text("def f():\n    from ..data import geom\n    return geom\n")
    (pkg / "data" / "geom.py").write_text("from ..priors import hull\n")
    r = measure(tmp_path)
    assert [(e[0], e[1], e[2]) for e in r["upward"]] == [("avat3r.priors.hull", "avat3r.data.geom", True)]
    assert r["package_cycles"] == [["data", "priors"]] and r["module_cycles_top_level"] == []
