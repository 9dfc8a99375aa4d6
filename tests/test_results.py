"""The committed result tables the README quotes are what the benchmarks make from the committed results: each
summary's first line names its command, and ``--rescore`` makes the table again from the saved metrics.json /
per-condition CSVs without running a model. A change to how a number is counted (e.g. which inputs are
expressive) that is not carried into these files fails here."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import load_script

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"

#: the generalisation summaries behind the README's tables of the shipped models
GENERALISATION = ["default_feat10_ema_test/summary_test.md", "default_feat10_ema_ungated_test/summary_test.md",
                  "default_feat10_test/summary_test.md", "default_feat10_ungated_test/summary_test.md",
                  "round32/feat10_seed0/test/summary_test_jaffe_yale.md",
                  "round32/feat10_lodo_ckplus/test/summary_test_ckplus.md",
                  "default_feat05_test/summary_test.md", "default_feat05_ungated_test/summary_test.md",
                  "round30/feat05_seed0/test/summary_test_jaffe_yale.md",
                  "round30/feat05_lodo_ckplus/test/summary_test_ckplus.md", "default_feat_test/summary_test.md",
                  "default_skipmask_test/summary_test.md", "default_ema_test/summary_test.md",
                  "cc_by_ema/test/summary_test.md", "frontalize3d/summary_test.md", "nfgan_all_data/summary_test.md",
                  "round29/test/summary_test.md", "round31/test/summary_test.md",
                  "default_feat10_seeds/seed1/summary_test.md", "default_feat10_seeds/seed2/summary_test.md",
                  "retrained_here/summary_test.md", "round35/all_data_val/summary_val_london_ckplus_jaffe_yale.md",
                  "round35/feat10_ema_seed0/test/summary_test_jaffe_yale.md",
                  "round35/feat10_ema_lodo_ckplus/test/summary_test_ckplus.md",
                  "generalisation_turned/summary_test_turned.md", "default_soup3_test/summary_test.md",
                  "default_soup3_ungated_test/summary_test.md", "default_soup3_turned_test/summary_test_turned.md"]
#: the robustness summaries behind the README's robustness tables
ROBUSTNESS = ["photometric_robustness/summary_val.md", "photometric_robustness/summary_test.md",
              "default_ema_test/photometric_robustness/summary_test.md",
              "cc_by_ema/photometric_robustness/summary_val.md", "framing_robustness/default_feat/summary_test.md",
              "photometric_robustness/default_feat/summary_test.md", "framing_robustness/cc_by_feat/summary_test.md",
              "photometric_robustness/cc_by_feat/summary_test.md", "framing_robustness/default_feat05/summary_test.md",
              "photometric_robustness/default_feat05/summary_test.md", "framing_robustness/cc_by_feat05/summary_test.md",
              "photometric_robustness/cc_by_feat05/summary_test.md", "framing_robustness/default_feat10/summary_test.md",
              "photometric_robustness/default_feat10/summary_test.md",
              "framing_robustness/default_feat10_ema/summary_test.md",
              "photometric_robustness/default_feat10_ema/summary_test.md",
              "photometric_robustness/default_soup3/summary_test.md", "framing_robustness/default_soup3/summary_test.md"]


def _args(summary: Path, script: str) -> list[str]:
    first = summary.read_text(encoding="utf-8").splitlines()[0]
    head = f"Command: python benchmarks/{script} "
    assert head in first, f"{summary}: its first line does not name its command"
    return first.split(head, 1)[1].split()


def _drop_out(args: list[str]) -> list[str]:
    return [a for i, a in enumerate(args) if a != "--out" and (i == 0 or args[i - 1] != "--out")]


@pytest.mark.parametrize("rel", GENERALISATION)
def test_generalisation_summaries_are_made_from_their_metrics(rel, tmp_path, capsys):
    summary = RESULTS / rel
    for metrics in summary.parent.glob("*_*/metrics.json"):
        (tmp_path / metrics.parent.name).mkdir()
        shutil.copy(metrics, tmp_path / metrics.parent.name / "metrics.json")
    gen = load_script("benchmarks/generalisation.py")
    assert gen.main(_drop_out(_args(summary, "generalisation.py")) + ["--out", str(tmp_path), "--rescore"]) == 0
    capsys.readouterr()
    made = (tmp_path / summary.name).read_text(encoding="utf-8")
    assert made.strip() == summary.read_text(encoding="utf-8").strip()


@pytest.mark.parametrize("rel", ROBUSTNESS)
def test_robustness_summaries_are_made_from_their_csvs(rel, tmp_path, capsys):
    summary = RESULTS / rel
    for folder in summary.parent.iterdir():
        if folder.is_dir() and list(folder.glob("*.csv")):
            shutil.copytree(folder, tmp_path / folder.name)
    bench = load_script("benchmarks/photometric_robustness.py")
    args = _drop_out(_args(summary, "photometric_robustness.py"))
    assert bench.main(args + ["--out", str(tmp_path), "--rescore"]) == 0
    capsys.readouterr()
    made = (tmp_path / summary.name).read_text(encoding="utf-8").splitlines()
    want = summary.read_text(encoding="utf-8").splitlines()
    assert made[1:] == want[1:]        # the first line names the command, with the --out it was given


#: the choice rules behind the README's "How the default was chosen" and the model card, each file's first line
#: its command: those scored again after the correction of 2026-12-04 (Yale's neutral variants are not expressive
#: inputs), the rules that made the default of rounds 30 and 32, round 35's and round 44's
RULES = [f"expressive_fix/rules/{name}.txt" for name in
         ("choice_noise_round8", "round9_cc_by_skipmask", "ema_rule", "ema_lodo_jaffe_yale_half_seed0",
          "ema_lodo_jaffe_yale_half_seed1", "ema_lodo_jaffe_yale_half_seed2", "cc_by_ema_rule")] + \
        ["round30/feat05_rule.txt", "round30/feat05_ckplus_part.txt", "round32/feat10_rule.txt",
         "round32/feat10_ckplus_part.txt", "round35/screen_seed0.txt", "round35/screen_seed0_ungated.txt",
         "round35/ckplus_part.txt", "round35/rule.txt", "round35/baseline_vs_round32_screen.txt",
         "round35/screen_seed1.txt", "round35/screen_seed1_ungated.txt", "round35/screen_seed2.txt",
         "round35/screen_seed2_ungated.txt"] + \
        [f"round44/{name}.txt" for name in ("screen_soup_seed0", "screen_soup3_seed0", "ckplus_part", "rule",
                                            "screen_soup3_seed1", "screen_soup3_seed2", "ckplus_part_same_draw")]


@pytest.mark.parametrize("rel", RULES)
def test_the_choice_rules_give_their_committed_scores(rel, capsys, monkeypatch):
    saved = (RESULTS / rel).read_text(encoding="utf-8").splitlines()
    assert saved[0].startswith("$ python tools/choice_score.py ")
    monkeypatch.chdir(REPO)
    tool = load_script("tools/choice_score.py")
    assert tool.main(saved[0].split()[3:]) == 0
    assert capsys.readouterr().out.splitlines() == saved[2:]


#: the README's FER rows with references from a normaliser that never saw CK+: (row label fragment, result folder)
FER_LODO_ROWS = [("(round 44's average of three last stages) trained without CK+ (`lodo_ckplus_soup3`)",
                  "fer_ckplus96_2b_aug_lodo_soup3"),
                 ("(with the average) trained without CK+ (`lodo_ckplus_feat10_ema`)", "fer_ckplus96_2b_aug_lodo_feat10_ema"),
                 ("(L_feat at 1.0, `lodo_ckplus_feat10`)", "fer_ckplus96_2b_aug_lodo_feat10"),
                 ("(skip mask, `lodo_ckplus_skipmask`)", "fer_ckplus96_2b_aug_lodo_skipmask"),
                 ("`plain`'s recipe, the default's before the skip mask, `lodo_ckplus`", "fer_ckplus96_2b_aug_lodo")]


@pytest.mark.parametrize("label,folder", FER_LODO_ROWS)
def test_the_readme_fer_rows_are_their_committed_cv_summaries(label, folder):
    """Each README row's mean +- std is its committed `nfgan fer cv` summary, rounded as the table rounds."""
    import json

    d = json.loads((RESULTS / folder / "summary.json").read_text(encoding="utf-8"))
    assert d["complete"] and d["folds_done"] == 10 and d["variant"] == "2b_aug"
    rows = [line for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| CK+ 10-fold") and label in line]
    assert len(rows) == 1, f"README: {len(rows)} FER rows name {label}"
    assert rows[0].rstrip(" |").endswith(f"{100 * d['mean_accuracy']:.2f} +- {100 * d['std_accuracy']:.2f}")


@pytest.mark.parametrize("label,folder", [("`lodo_jaffe_yale_feat10_ema`", "fer_jaffe_2b_aug_lodo_feat10_ema"),
                                          ("`lodo_jaffe_yale_soup3`", "fer_jaffe_2b_aug_lodo_soup3")])
def test_the_readme_jaffe_rows_without_jaffe_are_the_means_of_their_committed_seeds(label, folder):
    """The README's JAFFE rows with references from a normaliser that never saw JAFFE: the 2b and 2b_aug cells are
    the means over the committed seeds' `nfgan fer cv` summaries (the 2b runs are round 35's, shared by both rows)."""
    import json

    means = {}
    for variant in ("2b", "2b_aug"):
        accs = []
        for seed in (0, 1, 2):
            base = RESULTS / ("fer_jaffe_2b_aug_lodo_feat10_ema" if variant == "2b" else folder)
            d = json.loads((base / f"{variant}_seed{seed}" / "summary.json").read_text(encoding="utf-8"))
            assert d["complete"] and d["folds_done"] == 10 and d["variant"] == variant
            accs.append(100 * d["mean_accuracy"])
        means[variant] = sum(accs) / len(accs)
    rows = [line for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| JAFFE") and label in line]
    assert len(rows) == 1
    cells = [c.strip().strip("*") for c in rows[0].strip(" |").split("|")]
    assert cells[-2:] == [f"{means['2b']:.2f}", f"{means['2b_aug']:.2f}"]
