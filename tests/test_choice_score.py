"""tools/choice_score.py: the normaliser choice rule of issue #23 and its paired bootstrap, on per_face.csv files
written here with numbers worked out by hand."""
from __future__ import annotations

import csv
import re

import pytest

from nfgan.data.pairs import load_splits

from conftest import load_script

COLUMNS = ["model", "input_id", "subject", "expression", "id_gt_pass_faceres", "neutral_faceapi"]


def _tool():
    return load_script("tools/choice_score.py")


def _write(path, model, faces):
    """faces: (subject, expression, gt pass, face-api neutral) per input."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i, (subject, expression, gt, neutral) in enumerate(faces):
            w.writerow([model, f"{subject}-{i}", subject, expression, gt, neutral])
            w.writerow(["input", f"{subject}-{i}", subject, expression, 1, 0])   # another model's row: ignored
    return path


def _run(capsys, *argv):
    assert _tool().main(list(argv)) == 0
    return capsys.readouterr().out


def _scores(out):
    line = [ln for ln in out.splitlines() if ln.startswith("choice_score ")][-1]
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


def _bootstrap(out):
    line = [ln for ln in out.splitlines() if ln.startswith("bootstrap ")][-1]
    got = {}
    for item in line.split()[1:]:
        m = re.fullmatch(r"(\w+)=([-+][\d.]+)\[([-+][\d.]+),([-+][\d.]+)\]([\d.]+)", item)
        assert m, item
        got[m.group(1)] = tuple(float(x) for x in m.groups()[1:])
    return got


LONDON_VAL = load_splits("london")["val"]
LONDON_TEST = load_splits("london")["test"]
JAFFE = load_splits("jaffe")
YALE = load_splits("yale")


def test_the_rule_score_is_the_input_weighted_mean_of_identity_and_neutrality(tmp_path, capsys):
    # London validation people: each a neutral face that passes and a smile; the smile passes for the first
    # five people and is called neutral for the first eight. gt pass 15/20, neutral 8/10 -> (75 + 80) / 2 = 77.5.
    london = [(p, "neutral", 1, 1) for p in LONDON_VAL]
    london += [(p, "happiness", int(i < 5), int(i < 8)) for i, p in enumerate(LONDON_VAL)]
    # test people are outside the in part: a failing face of theirs must not count
    london += [(p, "happiness", 0, 0) for p in LONDON_TEST]
    # JAFFE left out: its train + validation people (8) count, its test people do not. Each person one
    # expressive face: gt pass 4/8 = 50, neutral 6/8 = 75 -> 62.5 over 8 inputs.
    people = JAFFE["train"] + JAFFE["val"]
    jaffe = [(p, "anger", int(i < 4), int(i < 6)) for i, p in enumerate(people)]
    jaffe += [(p, "anger", 1, 1) for p in JAFFE["test"]]
    a = _write(tmp_path / "london.csv", "cand", london)
    b = _write(tmp_path / "jaffe.csv", "lodo", jaffe)
    out = _run(capsys, f"in:london:x={a}@cand", f"unseen:jaffe:x={b}@lodo")
    assert _scores(out) == {"x": pytest.approx((77.5 + 62.5) / 2, abs=0.05)}
    assert "| in | london | x | 20 | 75.0 | 80.0 | happiness 80 (10) |" in out
    assert "| unseen | jaffe | x | 8 | 50.0 | 75.0 | anger 75 (8) |" in out


def test_a_neutral_face_with_glasses_or_side_light_is_not_an_expressive_input(tmp_path, capsys):
    """Yale's neutral variants (neutral_glasses, neutral_leftlight, ...) count for identity, not for the neutral
    rate on expressive inputs: with them counted, that rate would be 6/8 here instead of 2/4."""
    people = YALE["train"] + YALE["val"]
    p = people[0]
    faces = [(p, "neutral", 1, 1), (p, "neutral_glasses", 1, 1), (p, "neutral_leftlight", 1, 1),
             (p, "neutral_noglasses", 1, 1), (p, "neutral_centerlight", 0, 1),
             (p, "happy", 1, 0), (p, "surprise", 0, 1), (p, "wink", 1, 0), (p, "sleepy", 1, 1)]
    out = _run(capsys, f"unseen:yale:x={_write(tmp_path / 'yale.csv', 'lodo', faces)}@lodo")
    # gt pass 7/9 = 77.8; neutral 2/4 on happy, surprise, wink, sleepy -> (77.8 + 50) / 2
    assert _scores(out) == {"x": pytest.approx((700 / 9 + 50) / 2, abs=0.05)}
    row = next(ln for ln in out.splitlines() if ln.startswith("| unseen | yale | x |"))
    assert "| 9 | 77.8 | 50.0 |" in row and "neutral_glasses" not in row


def _pair(tmp_path, ref_gt, cand_gt):
    """Two candidates on London's validation people, one smile each, always called neutral; only the gt pass
    of each person differs (lists of 10)."""
    ref = _write(tmp_path / "ref.csv", "ref", [(p, "happiness", g, 1) for p, g in zip(LONDON_VAL, ref_gt)])
    cand = _write(tmp_path / "cand.csv", "cand", [(p, "happiness", g, 1) for p, g in zip(LONDON_VAL, cand_gt)])
    return f"in:london:ref={ref}@ref", f"in:london:cand={cand}@cand"


def test_the_bootstrap_of_a_copy_of_the_reference_is_exactly_zero(tmp_path, capsys):
    gt = [1, 0, 1, 1, 0, 1, 0, 1, 1, 0]
    out = _run(capsys, *_pair(tmp_path, gt, gt), "--bootstrap", "300")
    assert _bootstrap(out)["cand"] == (0.0, 0.0, 0.0, 0.0)


def test_a_candidate_better_on_every_person_is_ahead_on_every_draw(tmp_path, capsys):
    out = _run(capsys, *_pair(tmp_path, [0, 1] * 5, [1] * 10), "--bootstrap", "500")
    diff, lo, hi, ahead = _bootstrap(out)["cand"]
    assert diff == pytest.approx(25.0)            # gt pass 100 against 50: (100 + 100) / 2 - (50 + 100) / 2
    assert 0 < lo <= diff <= hi and ahead == 1.0


def test_a_margin_carried_by_one_person_is_not_told_apart_from_noise(tmp_path, capsys):
    out = _run(capsys, *_pair(tmp_path, [0] * 10, [1] + [0] * 9), "--bootstrap", "2000")
    diff, lo, hi, ahead = _bootstrap(out)["cand"]
    assert diff == pytest.approx(5.0)
    # the person who makes the difference is missing from a draw with probability 0.9 ** 10 = 0.35
    assert lo == 0.0 and hi > diff
    assert 0.58 < ahead < 0.72


def test_the_bootstrap_repeats_with_its_seed_and_changes_with_another(tmp_path, capsys):
    specs = _pair(tmp_path, [0, 1, 1, 0, 1, 0, 0, 1, 1, 1], [1, 1, 0, 1, 1, 1, 0, 1, 1, 0])
    first = _bootstrap(_run(capsys, *specs, "--bootstrap", "200", "--seed", "3"))
    again = _bootstrap(_run(capsys, *specs, "--bootstrap", "200", "--seed", "3"))
    other = _bootstrap(_run(capsys, *specs, "--bootstrap", "200", "--seed", "4"))
    assert first == again and first != other


def test_a_part_with_none_of_its_people_is_refused_naming_the_file(tmp_path, capsys):
    only_test = _write(tmp_path / "t.csv", "cand", [(p, "happiness", 1, 1) for p in LONDON_TEST])
    with pytest.raises(SystemExit, match=r"t\.csv: model 'cand' has no rows of london's validation people"):
        _tool().main([f"in:london:x={only_test}@cand"])
    with pytest.raises(SystemExit, match="expected PART:SET:CANDIDATE"):
        _tool().main(["in:london=nothing"])
