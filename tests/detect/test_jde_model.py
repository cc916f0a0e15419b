"""The JDE network against the published reference: state-dict keys and shapes (jde_state_dict_keys.tsv),
output rows (JDE.md), decoding on hand-built head outputs, and checkpoint loading with its errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from portrait_builder.detect.jde import build_jde_net, decode_head, decode_outputs, load_jde_checkpoint
from portrait_builder.detect.jde.model import ANCHORS, decode_confident, resolve_arch
from portrait_builder.errors import UserError

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
KEYS_TSV = REFERENCE / "jde_state_dict_keys.tsv"
LAYERS_TSV = REFERENCE / "jde_layers_576x320.tsv"


def _reference_table() -> list[tuple[str, tuple[int, ...], str, str]]:
    if not KEYS_TSV.is_file():
        pytest.skip("../shared/reference/jde_state_dict_keys.tsv is not present")
    rows = []
    for line in KEYS_TSV.read_text().splitlines()[1:]:
        key, shape, dtype, kind = line.split("\t")
        rows.append((key, () if shape == "scalar" else tuple(int(s) for s in shape.split("x")), dtype, kind))
    return rows


@pytest.mark.parametrize("size", ["1088x608", "864x480", "576x320"])
def test_state_dict_equals_published_table(size):
    ref = _reference_table()
    assert len(ref) == 455
    n_id = ref[-1][1][0]  # 14455 identities in the released models
    with torch.device("meta"):  # shapes and dtypes without allocating or initialising 62 M parameters
        model = build_jde_net(size, nID=n_id)
        bare = build_jde_net(size)
    sd = model.state_dict()
    params = {k for k, _ in model.named_parameters()}
    assert list(sd) == [r[0] for r in ref]  # same keys, same order
    for key, shape, dtype, kind in ref:
        assert tuple(sd[key].shape) == shape, key
        assert str(sd[key].dtype) == f"torch.{dtype}", key
        assert (key in params) == (kind == "param"), key
    # the uncertainty scalars start at the published values
    # without nID the classifier is omitted
    assert list(bare.state_dict()) == [r[0] for r in ref if not r[0].startswith("classifier.")]


def test_uncertainty_scalars_start_at_published_values():
    sd = build_jde_net("tiny-256x160").state_dict()
    yolo = [k for k in sd if ".yolo_" in k]
    assert len(yolo) == 9
    for k in yolo:
        assert sd[k].item() == pytest.approx({"s_c": -4.15, "s_r": -4.85, "s_id": -2.3}[k.rsplit(".", 1)[1]])


def test_layer_sequence_matches_published_cfg():
    if not LAYERS_TSV.is_file():
        pytest.skip("../shared/reference/jde_layers_576x320.tsv is not present")
    spec = build_jde_net("576x320").spec
    rows = [line.split("\t") for line in LAYERS_TSV.read_text().splitlines()[1:]]
    assert len(rows) == len(spec) == 116
    for (idx, typ, details, out_ch), layer, ch in zip(rows, spec, _out_channels(spec), strict=True):
        assert {"convolutional": "conv"}.get(typ, typ) == layer["type"], idx
        assert int(out_ch) == ch, idx
        if typ == "convolutional":
            assert f"k{layer['k']} s{layer['s']} bn={int(layer['bn'])}" in details, idx
        if typ == "route":
            assert details.split("abs ")[1].rstrip(")") == ",".join(str(s) for s in layer["srcs"]), idx
        if typ == "shortcut":
            assert f"abs {layer['src']})" in details, idx


def _out_channels(spec):
    ch = []
    for layer in spec:
        t = layer["type"]
        ch.append(layer["out"] if t == "conv" else sum(ch[s] for s in layer["srcs"]) if t == "route" else ch[-1])
    return ch


@pytest.mark.parametrize("size,n", [("1088x608", 54264), ("864x480", 4 * (27 * 15 + 54 * 30 + 108 * 60)), ("576x320", 15120)])
def test_row_count_arithmetic(size, n):
    assert resolve_arch(size).num_rows == n


def test_forward_576x320_rows_and_decoding_consistency():
    torch.manual_seed(0)
    model = build_jde_net("576x320").eval()
    x = torch.rand(1, 3, 320, 576)
    with torch.no_grad():
        heads = model.forward_heads(x)
        out = model(x)
    assert [tuple(h.shape) for h in heads] == [(1, 536, 10, 18), (1, 536, 20, 36), (1, 536, 40, 72)]
    assert out.shape == (1, 15120, 518)
    assert torch.equal(out[..., 5], torch.zeros_like(out[..., 5]))
    assert torch.all((out[..., 4] >= 0) & (out[..., 4] <= 1))
    assert torch.allclose(out[..., 6:].norm(dim=-1), torch.ones(1, 15120), atol=1e-4)
    assert torch.allclose(out, decode_outputs(heads, torch.tensor(ANCHORS["576x320"], dtype=torch.float32)))


@pytest.mark.slow
def test_forward_1088x608_once():
    model = build_jde_net("1088x608").eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 608, 1088))
    assert out.shape == (1, 54264, 518)


def test_decode_head_on_hand_built_outputs():
    """One stride-32 head, 2 rows x 3 columns, embedding dim 2: every field checked by hand against JDE.md."""
    anchors = torch.tensor([[10.0, 30.0], [20.0, 60.0], [40.0, 80.0], [80.0, 100.0]])
    e = 2
    head = torch.zeros(1, 24 + e, 2, 3)
    a, j, i = 1, 1, 2  # anchor 1 at row 1, column 2
    head[0, a * 6 + 0, j, i] = 0.5  # dx
    head[0, a * 6 + 1, j, i] = -0.25  # dy
    head[0, a * 6 + 2, j, i] = math.log(2.0)  # dw
    head[0, a * 6 + 3, j, i] = 0.0  # dh
    head[0, a * 6 + 4, j, i] = 0.0  # c0
    head[0, a * 6 + 5, j, i] = math.log(3.0)  # c1: softmax -> 3/4
    head[0, 24:, j, i] = torch.tensor([3.0, 4.0])
    rows = decode_head(head, anchors, 32)
    assert rows.shape == (1, 4 * 2 * 3, 6 + e)
    r = rows[0, a * 6 + j * 3 + i]  # anchor, then row, then column
    expected = [2 * 32 + 0.5 * 20, 1 * 32 - 0.25 * 60, 20 * 2, 60 * 1, 0.75, 0.0, 0.6, 0.8]
    assert r.tolist() == pytest.approx(expected, abs=1e-6)
    # an all-zero cell: anchor box at the cell corner, score 1/2; the embedding (zero) stays zero
    r0 = rows[0, 3 * 6 + 0 * 3 + 1]  # anchor 3, row 0, column 1
    assert r0.tolist() == pytest.approx([32.0, 0.0, 80.0, 100.0, 0.5, 0.0, 0.0, 0.0])
    # the embedding is shared by the 4 anchors of a cell
    for k in range(4):
        assert rows[0, k * 6 + j * 3 + i, 6:].tolist() == pytest.approx([0.6, 0.8])


def test_decode_outputs_order_and_confident_subset():
    torch.manual_seed(1)
    e = 3
    heads = [torch.randn(2, 24 + e, 1 * k, 2 * k) for k in (1, 2, 4)]
    anchors = torch.rand(3, 4, 2) * 50 + 5
    out = decode_outputs(heads, anchors)
    assert out.shape == (2, 4 * (2 + 8 + 32), 6 + e)
    # the stride-16 rows start after the 4 * 1 * 2 stride-32 rows
    assert torch.allclose(out[:, 8:40], decode_head(heads[1], anchors[1], 16))
    # the fast path returns exactly the rows above the threshold, in row order
    for b, (boxes, scores, emb) in enumerate(decode_confident(heads, anchors, 0.6)):
        keep = out[b, :, 4] > 0.6
        assert keep.sum() > 0
        assert torch.allclose(boxes, out[b, keep, :4], atol=1e-5)
        assert torch.allclose(scores, out[b, keep, 4])
        assert torch.allclose(emb, out[b, keep, 6:], atol=1e-6)


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def published_576(tmp_path_factory):
    """A 576x320 model saved the way the published files are: {'epoch', 'model', 'optimizer'} with a classifier."""
    torch.manual_seed(2)
    model = build_jde_net("576x320", nID=7)
    for p in model.parameters():  # make the weights distinguishable from a fresh init
        p.data.add_(torch.randn_like(p) * 0.01)
    path = tmp_path_factory.mktemp("ckpt") / "jde_576x320_uncertainty.pt"
    torch.save({"epoch": 29, "model": model.state_dict(), "optimizer": None}, path)
    return path, model.state_dict()


def test_checkpoint_round_trip_published_wrapper_and_bare(published_576, tmp_path):
    path, sd = published_576
    model = load_jde_checkpoint(path, "576x320")
    assert model.classifier is None
    got = model.state_dict()
    assert set(got) == {k for k in sd if not k.startswith("classifier.")}
    assert all(torch.equal(got[k], sd[k]) for k in got)
    bare = tmp_path / "bare.pt"
    torch.save({k: v for k, v in sd.items() if not k.startswith("classifier.")}, bare)
    assert torch.equal(load_jde_checkpoint(bare, "576x320").state_dict()["module_list.83.conv_83.bias"], sd["module_list.83.conv_83.bias"])


def test_checkpoint_errors_are_one_clear_line(published_576, tmp_path):
    path, sd = published_576
    with pytest.raises(UserError, match="JDE weights not found: .*nope.pt"):
        load_jde_checkpoint(tmp_path / "nope.pt", "576x320")
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(UserError, match="is not a PyTorch checkpoint loadable with weights_only=True"):
        load_jde_checkpoint(text, "576x320")
    lst = tmp_path / "list.pt"
    torch.save([1, 2, 3], lst)
    with pytest.raises(UserError, match="is not a JDE checkpoint"):
        load_jde_checkpoint(lst, "576x320")
    # three keys gone: the error names them
    partial = {k: v for k, v in sd.items() if not k.startswith("module_list.0.batch_norm_0.running")}
    partial.pop("module_list.113.conv_113.bias")
    p2 = tmp_path / "partial.pt"
    torch.save({"epoch": 0, "model": partial, "optimizer": None}, p2)
    with pytest.raises(UserError) as exc:
        load_jde_checkpoint(p2, "576x320")
    msg = str(exc.value)
    assert "missing 3 keys: module_list.0.batch_norm_0.running_mean, module_list.0.batch_norm_0.running_var, module_list.113.conv_113.bias" in msg
    assert "\n" not in msg
    # a published checkpoint given to the tiny architecture: wrong network, and the message says which one it is
    with pytest.raises(UserError, match=r"does not match the JDE tiny-576x320 network \(checkpoint is for a published Darknet-53 JDE"):
        load_jde_checkpoint(path, "tiny-576x320")
    with pytest.raises(UserError, match="unknown JDE size/arch '640x480'; valid: 1088x608, 864x480, 576x320"):
        load_jde_checkpoint(path, "640x480")


def test_shape_mismatch_is_named(tmp_path):
    model = build_jde_net("tiny-320x192", embedding_dim=32)
    sd = model.state_dict()
    sd["module_list.0.conv_0.weight"] = torch.zeros(4, 3, 3, 3)
    p = tmp_path / "bad.pt"
    torch.save(sd, p)
    with pytest.raises(UserError, match=r"1 shapes differ: module_list.0.conv_0.weight \[4, 3, 3, 3\] vs expected \[8, 3, 3, 3\]"):
        load_jde_checkpoint(p, "tiny-320x192")


def test_checkpoints_load_with_weights_only_and_no_code(tmp_path):
    """A pickle that would run code is refused (weights_only=True), with the clear error."""

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, p)
    with pytest.raises(UserError, match="not a PyTorch checkpoint loadable with weights_only=True"):
        load_jde_checkpoint(p, "576x320")


def test_tiny_variant_outputs():
    model = build_jde_net("tiny-320x192", embedding_dim=48).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 192, 320))
    assert out.shape == (1, 4 * (10 * 6 + 20 * 12 + 40 * 24), 6 + 48)
    assert np.allclose(out[0, :, 6:].norm(dim=-1).numpy(), 1, atol=1e-4)
    with torch.device("meta"):
        published = build_jde_net("576x320")
    assert sum(p.numel() for p in model.parameters()) < 0.05 * sum(p.numel() for p in published.parameters())
