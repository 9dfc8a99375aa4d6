"""The expression directions of the U-Net's mid skips (nfgan.inference.expression_directions,
tools/fit_expression_directions.py): the projection, the fit, the model file and its ONNX graph."""
import numpy as np
import pytest
import torch

from nfgan.config import ConfigError
from nfgan.training.config import load_config
from nfgan.inference.expression_directions import expression_specific
from nfgan.models.unet import UNetGenerator
from nfgan.pixels import to_unit_batch


def test_projection_sets_the_part_along_the_directions_to_the_mean_and_keeps_the_rest():
    """s - Q Q^T (s - c): with s = c + Q a + r (r orthogonal to Q) the skip becomes c + r; unfitted (zero)
    buffers change nothing, so a U-Net with k > 0 but no directions gives the plain outputs."""
    torch.manual_seed(0)
    plain = UNetGenerator(ngf=8, dropout=0.0).eval()
    g = UNetGenerator(ngf=8, dropout=0.0, skip_proj_k=3, skip_proj_sides=(16, 8)).eval()
    missing, unexpected = g.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == ["skip_proj1_c", "skip_proj1_q", "skip_proj2_c", "skip_proj2_q"]
    assert g.projected_skips == (1, 2) and g.skip_proj1_q.shape == (16 * 16 * 16, 3)
    x = torch.rand(4, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g(x), plain(x))
    d = 32 * 8 * 8                                  # ngf 8: the 8 px map has 32 channels
    q, _ = torch.linalg.qr(torch.randn(d, 3))
    c = torch.randn(d)
    g.skip_proj2_q.copy_(q)
    g.skip_proj2_c.copy_(c)
    r = torch.randn(2, d)
    r = r - (r @ q) @ q.T
    a = torch.randn(2, 3) * 5
    s = (c + a @ q.T + r).view(2, 32, 8, 8)
    assert torch.allclose(g.projected_skip(2, s).flatten(1), c + r, atol=1e-4)
    with torch.no_grad():
        assert not torch.equal(g(x), plain(x))      # the 8 px skip now changes the output
        skips, _ = g._encode(x)
        skips0, _ = plain._encode(x)
    assert all(torch.equal(u, v) for u, v in zip(skips, skips0))   # the encoder's maps are the photo's


def test_expression_specific_directions_avoid_the_ones_people_differ_along():
    """Planted data: displacements are large along 10 'identity' axes, along which neutral faces also vary, and
    smaller along 3 expression-only axes; the generalised directions find the expression-only ones, the
    displacements' strongest directions do not."""
    rng = np.random.default_rng(0)
    dim, n = 40, 400
    ident, expr = np.arange(10), np.array([30, 31, 32])
    d = np.zeros((n, dim))
    d[:, ident] = rng.normal(scale=3.0, size=(n, 10))
    d[:, expr] = rng.normal(scale=1.0, size=(n, 3))
    d += rng.normal(scale=0.01, size=(n, dim))
    neutral = np.zeros((300, dim))
    neutral[:, ident] = rng.normal(scale=3.0, size=(300, 10))
    neutral += rng.normal(scale=0.01, size=(300, dim))
    q = expression_specific(torch.from_numpy(d), torch.from_numpy(neutral - neutral.mean(0)), rank=20)
    assert torch.allclose(q.T @ q, torch.eye(q.shape[1], dtype=q.dtype), atol=1e-8)
    on_expr = (q[expr, :3] ** 2).sum(0)
    assert (on_expr > 0.99).all(), on_expr
    _, _, vh = torch.linalg.svd(torch.from_numpy(d), full_matrices=False)
    assert ((vh[:3, expr] ** 2).sum(1) < 0.05).all()     # the strongest directions are the identity axes


def test_training_config_refuses_the_inference_step():
    with pytest.raises(ConfigError, match="inference step"):
        load_config(overrides={"model": {"type": "pix2pix", "skip_proj_k": 4}})
    with pytest.raises(ValueError, match="skip_proj"):
        UNetGenerator(ngf=8, skip_proj_k=2, skip_proj_sides=(12,))
    with pytest.raises(ValueError, match="exceeds"):
        UNetGenerator(ngf=8, skip_proj_k=10 ** 6, skip_proj_sides=(8,))


def test_tool_fits_on_training_people_and_the_file_applies_the_step_everywhere(tmp_path):
    """tools/fit_expression_directions.py on a trained tiny pix2pix run: the directions come from the training
    split's pairs only, travel in the model file (the model hyper-parameters say k), change the outputs of every
    input, and the ONNX graph gives the same faces; a file that already has them is refused."""
    from conftest import load_script, make_prepared, p2p_config, tiny_nets

    from nfgan.inference import load_model
    from nfgan.training.loop import train

    root = make_prepared(tmp_path / "d", subjects=8, poses=("frontal",))
    train(p2p_config(root, steps=2), tmp_path / "run", progress=False, feature_nets=tiny_nets())
    tool = load_script("tools/fit_expression_directions.py")
    out = tmp_path / "dirs.safetensors"
    assert tool.main([str(tmp_path / "run"), str(out), "--k", "2", "--rank", "4",
                      f"synthetic={root}:{root / 'splits.json'}"]) == 0
    plain, g = load_model(tmp_path / "run"), load_model(out)
    rec = g.info["expression_directions"]
    assert rec["k"] == 2 and rec["sides"] == [16, 8] and rec["pairs"] == 6    # 6 training people x 1 happy photo
    assert g.info["model"]["skip_proj_k"] == 2 and g.info["train_subjects"] == plain.info["train_subjects"]
    gen = g.nets["gen"]
    for i in gen.projected_skips:
        q = getattr(gen, f"skip_proj{i}_q")
        assert torch.allclose(q.T @ q, torch.eye(2), atol=1e-5)
    faces = np.load(root / "faces.npy")
    import csv

    happy = torch.tensor([r["expression"] == "happy" for r in csv.DictReader(open(root / "manifest.csv"))])
    x = to_unit_batch(faces)
    with torch.no_grad():     # every input's output moves (a 2-step net's decoder reads its skips but little)
        moved = (gen.eval()(x) - plain.nets["gen"].eval()(x)).abs().flatten(1).amax(1)
        skips, _ = gen._encode(x)
        for i in gen.projected_skips:   # and its skips lose their part along the directions (relative to c)
            q, c = getattr(gen, f"skip_proj{i}_q"), getattr(gen, f"skip_proj{i}_c")
            before = ((skips[i].flatten(1) - c) @ q).norm(dim=1)
            after = ((gen.projected_skip(i, skips[i]).flatten(1) - c) @ q).norm(dim=1)
            assert (after < 1e-3 * before).all(), (before, after)
            # the photos with the planted 'expression' lie far further along them than the neutral ones
            assert before[happy].min() > 2 * before[~happy].max(), (before, happy)
    assert (moved > 0).all(), moved
    a = g.normalize(faces)
    assert np.array_equal(a, load_model(out).normalize(faces))
    with pytest.raises(SystemExit):
        tool.main([str(out), str(tmp_path / "again.safetensors"), f"synthetic={root}:{root / 'splits.json'}"])
    pytest.importorskip("onnxruntime")
    from nfgan.cli import main
    from nfgan.inference.normalizer import Normalizer

    assert main(["export", "--format", "onnx", "-o", str(tmp_path / "onnx"), "--model", str(out)]) == 0
    got = Normalizer.from_onnx(tmp_path / "onnx" / "dirs.onnx", threads=1).normalize(faces)
    assert np.abs(got.astype(int) - a).max() <= 1


def test_a_float16_model_keeps_its_directions_float32_through_the_fit_and_the_export(tmp_path):
    """The shipping path: a float16 model file, its directions fitted (tools/fit_expression_directions.py), then
    written again with metrics (tools/export_default_model.py): weights stay float16, the directions float32 (the
    same faces as the fitted file), and the file keeps its record of the directions and training people."""
    import json

    from conftest import load_script, make_prepared, p2p_config, tiny_nets
    from safetensors import safe_open

    from nfgan.inference import export_model, load_model
    from nfgan.training.loop import train

    root = make_prepared(tmp_path / "d", subjects=8, poses=("frontal",))
    train(p2p_config(root, steps=2), tmp_path / "run", progress=False, feature_nets=tiny_nets())
    half = export_model(tmp_path / "run", tmp_path / "half.safetensors", half=True)
    dirs, shipped = tmp_path / "dirs.safetensors", tmp_path / "shipped.safetensors"
    assert load_script("tools/fit_expression_directions.py").main(
        [str(half), str(dirs), "--k", "2", "--rank", "4", f"synthetic={root}:{root / 'splits.json'}"]) == 0
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"models": {}, "identity_calibration": {}}))
    assert load_script("tools/export_default_model.py").main(
        [str(dirs), "--metrics", str(metrics), "--calibration-only", "--out", str(shipped)]) == 0
    for f in (dirs, shipped):
        with safe_open(f, "pt") as st:
            dtypes = {k: st.get_tensor(k).dtype for k in st.keys()}
        proj = {k for k in dtypes if k.rpartition("/")[2].startswith("skip_proj")}
        assert len(proj) == 4 and all(dtypes[k] == torch.float32 for k in proj)
        assert {dtypes[k] for k in dtypes if k not in proj and dtypes[k].is_floating_point} == {torch.float16}
    a, b = load_model(dirs), load_model(shipped)
    assert b.info["expression_directions"] == a.info["expression_directions"]
    assert b.info["expression_directions"]["pairs"] == 6 and b.info["model"]["skip_proj_k"] == 2
    assert b.info["train_subjects"] == load_model(half).info["train_subjects"]
    faces = np.load(root / "faces.npy")
    assert np.array_equal(a.normalize(faces), b.normalize(faces))
    assert not np.array_equal(a.normalize(faces), load_model(half).normalize(faces))


def test_a_second_stage_trains_with_fixed_directions_from_a_first_stage_without_them(tmp_path):
    """model.skip_proj_from: a second stage resumed from a first stage's checkpoint (which has no directions) takes
    the first k directions of a file fitted on that first stage out of its skips while it trains: the trained file
    holds them unchanged and applies them, and its weights differ from the same second stage trained without them.
    A config naming no file, or a file without directions, is refused with the reason."""
    import shutil

    from conftest import load_script, make_prepared, p2p_config, tiny_nets
    from safetensors import safe_open

    from nfgan.inference import load_model
    from nfgan.training.loop import train

    root = make_prepared(tmp_path / "d", subjects=8, poses=("frontal",))
    train(p2p_config(root, steps=2), tmp_path / "first", progress=False, feature_nets=tiny_nets())
    dirs = tmp_path / "dirs.safetensors"
    assert load_script("tools/fit_expression_directions.py").main(
        [str(tmp_path / "first"), str(dirs), "--k", "3", "--rank", "4",
         f"synthetic={root}:{root / 'splits.json'}"]) == 0

    def second(name, **model):
        run = tmp_path / name
        shutil.copytree(tmp_path / "first" / "checkpoints", run / "checkpoints")
        cfg = p2p_config(root, steps=4)
        cfg["model"].update(model)
        train(cfg, run, resume=True, progress=False, feature_nets=tiny_nets())
        return load_model(run)

    fixed, plain = second("fixed", skip_proj_k=2, skip_proj_from=str(dirs)), second("plain")
    assert fixed.info["model"]["skip_proj_k"] == 2 and plain.info["model"]["skip_proj_k"] == 0
    gen = fixed.nets["gen"]
    with safe_open(str(dirs), "pt") as f:
        for i in gen.projected_skips:
            assert torch.equal(getattr(gen, f"skip_proj{i}_q"), f.get_tensor(f"gen/skip_proj{i}_q")[:, :2])
            assert torch.equal(getattr(gen, f"skip_proj{i}_c"), f.get_tensor(f"gen/skip_proj{i}_c"))
    a, b = gen.state_dict(), plain.nets["gen"].state_dict()
    assert all(k in a for k in b) and any(not torch.equal(a[k], b[k]) for k in b if b[k].is_floating_point())
    faces = np.load(root / "faces.npy")
    assert not np.array_equal(fixed.normalize(faces), plain.normalize(faces))

    with pytest.raises(ConfigError, match="skip_proj_from needs model.skip_proj_k"):
        load_config(overrides={"model": {"type": "pix2pix", "skip_proj_from": str(dirs)}})
    cfg = p2p_config(root, steps=2)
    first_checkpoint = tmp_path / "first" / "checkpoints" / "step_00000002.safetensors"
    cfg["model"].update(skip_proj_k=2, skip_proj_from=str(first_checkpoint))
    with pytest.raises(ConfigError, match="step_00000002.safetensors: model.skip_proj_from: no expression directions"):
        train(cfg, tmp_path / "bad", progress=False, feature_nets=tiny_nets())
    cfg["model"].update(skip_proj_k=4, skip_proj_from=str(dirs))
    with pytest.raises(ConfigError, match="needs .* x 4 or more columns"):
        train(cfg, tmp_path / "bad2", progress=False, feature_nets=tiny_nets())
